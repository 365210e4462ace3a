package jetstream

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// BucketTasks is the task_info bucket.
const BucketTasks = "jw_tasks"

// Storage selects where the task_info bucket lives, PowerJob's
// MEMORY/DISK choice.
type Storage string

// Storages.
const (
	StorageMemory Storage = "memory"
	StorageFile   Storage = "file"
)

// ParseStorage accepts memory/file (and PowerJob's MEMORY/DISK).
func ParseStorage(s string) (Storage, error) {
	switch strings.ToLower(s) {
	case "", "file", "disk":
		return StorageFile, nil
	case "memory", "mem":
		return StorageMemory, nil
	}
	return "", fmt.Errorf("task_store.storage: %q is not memory or file", s)
}

// OpenTasksBucket binds to (or creates) the task_info bucket.
func OpenTasksBucket(ctx context.Context, js jetstream.JetStream, st Storage, replicas int) (jetstream.KeyValue, error) {
	storage := jetstream.FileStorage
	if st == StorageMemory {
		storage = jetstream.MemoryStorage
	}
	return ensureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: BucketTasks, History: 1, Storage: storage, Replicas: replicas,
		MaxValueSize: 1 << 20,
	})
}
