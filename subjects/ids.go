package subjects

import (
	"crypto/rand"
	"fmt"
	"os"
)

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// RandomToken returns n random characters from [a-z0-9].
func RandomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	return string(b)
}

// NewID returns "<prefix>-<host>-<pid>-<random>": token-safe, readable in
// logs, and unique per process even when two processes share a host and a
// recycled pid.
func NewID(prefix string) string {
	host, _ := os.Hostname()
	clean := make([]byte, 0, 32)
	for i := 0; i < len(host) && len(clean) < 32; i++ {
		c := host[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' {
			clean = append(clean, c)
		}
	}
	if len(clean) == 0 {
		clean = append(clean, "host"...)
	}
	return fmt.Sprintf("%s-%s-%d-%s", prefix, clean, os.Getpid(), RandomToken(6))
}
