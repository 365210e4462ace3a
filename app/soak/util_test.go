package soak

import (
	"sort"
	"strconv"
)

func itoa(n int) string     { return strconv.Itoa(n) }
func itoaU(n uint64) string { return strconv.FormatUint(n, 10) }

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
