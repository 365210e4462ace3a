package jetstream

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

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

// OpenTasksBucket binds to (replicas Bind) or creates app's task_info
// bucket (TasksKV). The server creates it when it takes the app; workers
// bind.
func OpenTasksBucket(ctx context.Context, js jetstream.JetStream, app string, st Storage, replicas int) (jetstream.KeyValue, error) {
	storage := jetstream.FileStorage
	if st == StorageMemory {
		storage = jetstream.MemoryStorage
	}
	return ensureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: TasksKV(app).Bucket, History: 1, Storage: storage, Replicas: replicas,
		MaxValueSize: 1 << 20,
	})
}

// EnsureAppStores creates (or brings to replicas) app's own stores: its
// task_info bucket with storage st and its container artifact store.
func EnsureAppStores(ctx context.Context, js jetstream.JetStream, app string, st Storage, replicas int) error {
	if _, err := OpenTasksBucket(ctx, js, app, st, replicas); err != nil {
		return err
	}
	return newContainers(js, nil, replicas).EnsureArtifacts(ctx, app) // the registry is not needed
}
