package alert_test

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/modules/alert"
)

type mailMsg struct {
	from string
	to   []string
	data []byte
}

// mailbox is a local SMTP server on 127.0.0.1 that requires PLAIN auth
// with user/pass and keeps what it receives.
type mailbox struct {
	addr     string
	mu       sync.Mutex
	msgs     []mailMsg
	sessions int // connections, one per attempt
}

func newMailbox(t *testing.T, user, pass string) *mailbox {
	t.Helper()
	mb := &mailbox{}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		mb.mu.Lock()
		mb.sessions++
		mb.mu.Unlock()
		return &mailSession{mb: mb, user: user, pass: pass}, nil
	}))
	s.Domain = "localhost"
	s.AllowInsecureAuth = true // net/smtp sends PLAIN to 127.0.0.1 without TLS
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	mb.addr = l.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close(); <-done })
	return mb
}

func (mb *mailbox) attempts() int {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return mb.sessions
}

func (mb *mailbox) messages() []mailMsg {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return append([]mailMsg(nil), mb.msgs...)
}

type mailSession struct {
	mb         *mailbox
	user, pass string
	authed     bool
	cur        mailMsg
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.user || pass != s.pass {
			// What real servers answer: permanent, not worth retrying.
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		s.authed = true
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.cur = mailMsg{from: from}
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	s.mb.mu.Lock()
	s.mb.msgs = append(s.mb.msgs, s.cur)
	s.mb.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        { s.cur = mailMsg{} }
func (s *mailSession) Logout() error { return nil }

func TestAlertEmail_ArrivesNamingAppJobInstanceAndReason(t *testing.T) {
	t.Parallel()
	mb := newMailbox(t, "alerts", "pw")
	cfg := alert.Default()
	cfg.Channels = map[string]alert.Channel{"ops": {
		Type: alert.ChannelEmail, SMTPAddr: mb.addr, From: "Jetworker <jetworker@example.com>",
		To: []string{"ops@example.com", "Oncall <oncall@example.com>"}, Username: "alerts", Password: "pw",
		Backoff: time.Millisecond,
	}}
	cfg.Rules = []alert.Rule{{App: "demo", On: []alert.Kind{alert.KindFailed}, Channels: []string{"ops"}}}
	n := start(t, cfg, nil)

	ev := failed("inst-7", "42")
	ev.Reason = "exit status 3: disk full\nsecond line"
	ev.Attrs = map[string]string{"worker": "w-1"}
	require.NoError(t, n.Notify(context.Background(), ev))
	eventually(t, func() bool { return len(mb.messages()) == 1 }, "mail received")

	got := mb.messages()[0]
	require.Equal(t, "jetworker@example.com", got.from)
	require.Equal(t, []string{"ops@example.com", "oncall@example.com"}, got.to)
	msg, err := mail.ReadMessage(bytes.NewReader(got.data))
	require.NoError(t, err)
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	require.NoError(t, err)
	for _, want := range []string{"failed", "demo", "42", "nightly-report", "inst-7"} {
		require.Contains(t, subject, want)
	}
	require.Equal(t, "failed.inst-7", msg.Header.Get("X-Jw-Alert-Id"))
	require.Contains(t, msg.Header.Get("To"), "oncall@example.com")
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	require.NoError(t, err)
	for _, want := range []string{"App:       demo", "Job:       42", "Instance:  inst-7",
		"Reason:    exit status 3: disk full", "worker:    w-1", "failed.inst-7"} {
		require.Contains(t, string(body), want)
	}
	require.Equal(t, alert.Stats{Sent: 1}, n.Stats())
	require.Equal(t, 1, mb.attempts())
}

func TestAlertEmail_WrongPasswordIsNotRetried(t *testing.T) {
	t.Parallel()
	mb := newMailbox(t, "alerts", "pw")
	cfg := alert.Default()
	cfg.Channels = map[string]alert.Channel{"ops": {
		Type: alert.ChannelEmail, SMTPAddr: mb.addr, From: "jetworker@example.com", To: []string{"ops@example.com"},
		Username: "alerts", Password: "wrong", Backoff: time.Millisecond,
	}}
	cfg.Rules = []alert.Rule{{App: "demo", On: []alert.Kind{alert.KindFailed}, Channels: []string{"ops"}}}
	n := start(t, cfg, nil)

	require.NoError(t, n.Notify(context.Background(), failed("inst-7", "42")))
	eventually(t, func() bool { return n.Stats().Failed == 1 }, "delivery failed")
	require.Empty(t, mb.messages())
	require.Equal(t, 1, mb.attempts(), "535 is permanent")
}
