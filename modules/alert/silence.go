package alert

import (
	"sync"
	"time"
)

// silenceSet holds silence windows by key, measured with now (the
// process's monotonic clock unless a test injects one). Expired windows
// are pruned once the set has doubled since the last prune, so memory is
// bounded by the keys silenced within one window.
type silenceSet struct {
	now func() time.Time

	mu        sync.Mutex
	windows   map[string]silenceWindow
	nextPrune int
}

type silenceWindow struct {
	holder string // the event that started it
	until  time.Time
}

func newSilenceSet(now func() time.Time) *silenceSet {
	return &silenceSet{now: now, windows: map[string]silenceWindow{}, nextPrune: 1024}
}

// silenced reports whether a window started by another holder is running
// on key.
func (s *silenceSet) silenced(key, holder string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.windows[key]
	return ok && w.holder != holder && s.now().Before(w.until)
}

// hold starts a window on key for holder unless another holder's window
// is running, and reports whether one is (then nothing changes).
func (s *silenceSet) hold(key, holder string, window time.Duration) (silenced bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if w, ok := s.windows[key]; ok && now.Before(w.until) {
		return w.holder != holder
	}
	s.prune(now)
	s.windows[key] = silenceWindow{holder: holder, until: now.Add(window)}
	return false
}

// prune is called with s.mu held.
func (s *silenceSet) prune(now time.Time) {
	if len(s.windows) < s.nextPrune {
		return
	}
	for k, w := range s.windows {
		if !now.Before(w.until) {
			delete(s.windows, k)
		}
	}
	s.nextPrune = max(1024, 2*len(s.windows))
}
