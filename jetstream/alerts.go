package jetstream

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BucketAlerts is the alert ledger: which alert deliveries were claimed or
// sent, and which silence windows are running, shared by every server so
// that an app's alerts survive a change of owner without being sent twice.
const BucketAlerts = "jw_alerts"

// AlertsRetention bounds the ledger: every entry expires after it (the
// bucket TTL), so it never grows without bound. An event re-notified after
// that long is treated as new.
const AlertsRetention = 7 * 24 * time.Hour

// DefaultAlertStaleAfter is how long a "sending" claim protects a delivery
// when OpenAlerts is given zero.
const DefaultAlertStaleAfter = 5 * time.Minute

// Alert claim states, the first word of a claim entry's value
// ("sending <unix_nano> <id>", "sent <unix_nano> <id>").
const (
	alertSending = "sending"
	alertSent    = "sent"
)

// Alerts is the JetStream ledger of alert deliveries (it satisfies
// alert.Ledger). Keys are a hash of the caller's id ("c.<hex>" for claims,
// "s.<hex>" for silences), so any id is NATS-safe.
//
// A delivery is claimed before it is sent (kv.Create of "sending", with a
// per-key TTL of staleAfter), then marked "sent" by compare-and-set (an
// entry without a TTL, kept for AlertsRetention). A server that dies
// between claim and send leaves a "sending" claim that the JetStream
// server expires after staleAfter: another server's Claim then succeeds,
// so that alert is sent late rather than lost. The age is measured by
// the JetStream server alone; no two machines' clocks are compared.
// staleAfter must exceed the longest delivery (all retries), or a slow
// but alive sender and the taker may both send.
type Alerts struct {
	kv         jetstream.KeyValue
	staleAfter time.Duration
}

// OpenAlerts binds to (or creates) the alert ledger. staleAfter is how old
// a "sending" claim must be before another server may take it over (zero
// means DefaultAlertStaleAfter). Silence windows use per-key TTLs, so the
// bucket is created with limit markers (NATS 2.11 or later).
func OpenAlerts(ctx context.Context, js jetstream.JetStream, staleAfter time.Duration, replicas int) (*Alerts, error) {
	kv, err := ensureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket: BucketAlerts, Description: "jetworker alert ledger", History: 1, TTL: AlertsRetention,
		LimitMarkerTTL: time.Minute, Replicas: replicas, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, err
	}
	if staleAfter <= 0 {
		staleAfter = DefaultAlertStaleAfter
	}
	return &Alerts{kv: kv, staleAfter: staleAfter}, nil
}

func alertKey(prefix, id string) string {
	sum := sha256.Sum256([]byte(id))
	return prefix + hex.EncodeToString(sum[:16])
}

func claimValue(state string, at time.Time, id string) []byte {
	return []byte(state + " " + strconv.FormatInt(at.UnixNano(), 10) + " " + id)
}

// parseClaim reads "<state> <unix_nano> <id>".
func parseClaim(v []byte) (state string, at time.Time, err error) {
	f := bytes.SplitN(v, []byte(" "), 3)
	if len(f) < 2 {
		return "", time.Time{}, fmt.Errorf("corrupt entry %q", v)
	}
	ns, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("corrupt entry %q", v)
	}
	return string(f[0]), time.Unix(0, ns), nil
}

// Claim records that the caller is about to deliver id. first is true for
// the first claim (or the first after an abandoned one expired); false
// when id was sent, or is being sent by someone else.
func (a *Alerts) Claim(ctx context.Context, id string) (first bool, err error) {
	key := alertKey("c.", id)
	ttl := max(time.Second, (a.staleAfter + time.Second - 1).Truncate(time.Second))
	for range 3 {
		_, err := a.kv.Create(ctx, key, claimValue(alertSending, time.Now(), id), jetstream.KeyTTL(ttl))
		if err == nil {
			return true, nil
		}
		if err = mapErr(err); !errors.Is(err, ErrExists) {
			return false, fmt.Errorf("claim alert %s: %w", id, err)
		}
		_, err = a.kv.Get(ctx, key)
		if err = mapErr(err); errors.Is(err, ErrNotFound) {
			continue // expired or released meanwhile: create again
		}
		if err != nil {
			return false, fmt.Errorf("claim alert %s: %w", id, err)
		}
		return false, nil // sent, or being sent (its claim expires if its sender died)
	}
	return false, fmt.Errorf("claim alert %s: %w: too many concurrent changes", id, ErrConflict)
}

// Sent marks a claimed id as delivered, so no takeover resends it. An id
// already marked is left alone; ErrNotFound when it was never claimed (or
// was released or expired).
func (a *Alerts) Sent(ctx context.Context, id string) error {
	key := alertKey("c.", id)
	for range 3 {
		e, err := a.kv.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("mark alert %s sent: %w", id, mapErr(err))
		}
		state, _, err := parseClaim(e.Value())
		if err != nil {
			return fmt.Errorf("mark alert %s sent: %w", id, err)
		}
		if state == alertSent {
			return nil
		}
		_, err = a.kv.Update(ctx, key, claimValue(alertSent, time.Now(), id), e.Revision())
		if err = mapErr(err); errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("mark alert %s sent: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("mark alert %s sent: %w", id, ErrConflict)
}

// Release drops a "sending" claim whose delivery failed, so that a later
// Claim of id succeeds. A sent or missing claim is left alone.
func (a *Alerts) Release(ctx context.Context, id string) error {
	key := alertKey("c.", id)
	e, err := a.kv.Get(ctx, key)
	if errors.Is(mapErr(err), ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("release alert %s: %w", id, mapErr(err))
	}
	if state, _, err := parseClaim(e.Value()); err == nil && state == alertSent {
		return nil
	}
	err = a.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
	if err = mapErr(err); err != nil && !errors.Is(err, ErrConflict) {
		return fmt.Errorf("release alert %s: %w", id, err)
	}
	return nil
}

// Silence starts a silence window of length window on key for holder (an
// event id) unless one is running. silenced is true when another holder's
// window is running; the same holder asking again (a retry, or a new owner
// re-notifying the same event) is not silenced. The window is a per-key
// TTL measured by the JetStream server, rounded up to whole seconds (at
// least 1s), and capped by AlertsRetention.
func (a *Alerts) Silence(ctx context.Context, key, holder string, window time.Duration) (silenced bool, err error) {
	k := alertKey("s.", key)
	ttl := max(time.Second, (window + time.Second - 1).Truncate(time.Second))
	for range 3 {
		_, err := a.kv.Create(ctx, k, []byte(holder), jetstream.KeyTTL(ttl))
		if err == nil {
			return false, nil
		}
		if err = mapErr(err); !errors.Is(err, ErrExists) {
			return false, fmt.Errorf("silence %s: %w", key, err)
		}
		e, err := a.kv.Get(ctx, k)
		if err = mapErr(err); errors.Is(err, ErrNotFound) {
			continue // the window ended meanwhile
		}
		if err != nil {
			return false, fmt.Errorf("silence %s: %w", key, err)
		}
		return string(e.Value()) != holder, nil
	}
	return false, fmt.Errorf("silence %s: %w: too many concurrent changes", key, ErrConflict)
}
