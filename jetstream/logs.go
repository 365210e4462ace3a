package jetstream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetworker/jetworker/subjects"
)

// StreamLogs captures every app's instance log batches.
const StreamLogs = "JW_LOGS"

// LogLimits bound the logs stream; the oldest batches go first.
type LogLimits struct {
	MaxAge   time.Duration // zero means 7 days
	MaxBytes int64         // zero means 1 GiB
}

// Logs is the instance log store.
type Logs struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

// OpenLogs binds to (or creates) the logs stream.
func OpenLogs(ctx context.Context, js jetstream.JetStream, lim LogLimits, replicas int) (*Logs, error) {
	if lim.MaxAge == 0 {
		lim.MaxAge = 7 * 24 * time.Hour
	}
	if lim.MaxBytes == 0 {
		lim.MaxBytes = 1 << 30
	}
	s, err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name: StreamLogs, Subjects: []string{subjects.LogsAll},
		MaxAge: lim.MaxAge, MaxBytes: lim.MaxBytes, Discard: jetstream.DiscardOld,
		MaxMsgSize: subjects.MaxMessageSize, Replicas: replicas, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("logs stream: %w", err)
	}
	return &Logs{js: js, stream: s}, nil
}

// readStored delivers the stored batches with one message get each (the
// next one on the instance's subject after the last): no consumer is
// created, so any number of readers at once costs the server nothing to
// keep (a burst of 2,000 reads with consumers hit the server's consumer
// limit in the chaos soak).
func (l *Logs) readStored(ctx context.Context, instanceID, filter string, fn func(*subjects.LogBatch) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	for seq := uint64(1); ; {
		m, err := l.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read logs %s: %w", instanceID, err)
		}
		var b subjects.LogBatch
		if err := subjects.Unmarshal(m.Data, &b); err == nil {
			if err := fn(&b); err != nil {
				return err
			}
		}
		seq = m.Sequence + 1
	}
}

// Read calls fn with each log batch of instanceID in order. With follow it
// keeps waiting for new batches until ctx ends; without, it returns once it
// has delivered what is stored now.
func (l *Logs) Read(ctx context.Context, instanceID string, follow bool, fn func(*subjects.LogBatch) error) error {
	if err := subjects.ValidToken(instanceID); err != nil {
		return fmt.Errorf("instance id: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	filter := subjects.LogsSubject("*", instanceID)
	if !follow {
		return l.readStored(ctx, instanceID, filter, fn)
	}
	// A short inactivity threshold: the server removes the consumer soon
	// after the read ends (the default keeps it for minutes, and many
	// reads in a row hit the consumer limit).
	cons, err := l.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, InactiveThreshold: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("read logs %s: %w", instanceID, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("read logs %s: %w", instanceID, err)
	}
	if info.NumPending == 0 && !follow {
		return nil
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read logs %s: %w", instanceID, err)
	}
	defer it.Stop()
	go func() { <-ctx.Done(); it.Stop() }()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return ctx.Err()
			}
			return fmt.Errorf("read logs %s: %w", instanceID, err)
		}
		var b subjects.LogBatch
		if err := subjects.Unmarshal(msg.Data(), &b); err == nil {
			if err := fn(&b); err != nil {
				return err
			}
		}
		md, err := msg.Metadata()
		if err == nil && md.NumPending == 0 && !follow {
			return nil
		}
	}
}
