package alert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// email sends events as plain-text mail through one SMTP server.
type email struct {
	ch   Channel
	from *mail.Address
	to   []*mail.Address
}

func newEmail(ch Channel) (*email, error) {
	from, err := mail.ParseAddress(ch.From)
	if err != nil {
		return nil, fmt.Errorf("from %q: %w", ch.From, err)
	}
	e := &email{ch: ch, from: from}
	for _, s := range ch.To {
		to, err := mail.ParseAddress(s)
		if err != nil {
			return nil, fmt.Errorf("to %q: %w", s, err)
		}
		e.to = append(e.to, to)
	}
	return e, nil
}

func (e *email) send(ctx context.Context, ev Event) (int, error) {
	msg := e.message(ev, time.Now())
	return retry(ctx, e.ch, func(ctx context.Context) error { return e.deliver(ctx, msg) })
}

// message renders the mail: headers (subject Q-encoded, values on one
// line) and a quoted-printable body, so that long reasons stay within
// SMTP's line limit.
func (e *email) message(ev Event, now time.Time) []byte {
	var b bytes.Buffer
	to := make([]string, len(e.to))
	for i, a := range e.to {
		to[i] = a.String()
	}
	sum := sha256.Sum256([]byte(ev.ID))
	fmt.Fprintf(&b, "From: %s\r\n", e.from.String())
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(to, ", "))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", ev.Subject()))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@jetworker>\r\n", hex.EncodeToString(sum[:16]))
	fmt.Fprintf(&b, "X-Jw-Alert-Id: %s\r\n", mime.QEncoding.Encode("utf-8", oneLine(ev.ID)))
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(ev.Text()))
	_ = qp.Close()
	return b.Bytes()
}

// deliver makes one SMTP transaction, bounded by ctx: its deadline is the
// connection's and its end closes the connection.
func (e *email) deliver(ctx context.Context, msg []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.ch.SMTPAddr)
	if err != nil {
		return fmt.Errorf("dial %s: %w", e.ch.SMTPAddr, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	defer context.AfterFunc(ctx, func() { _ = conn.Close() })()
	host, _, _ := net.SplitHostPort(e.ch.SMTPAddr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		_ = conn.Close()
		return smtpError("greeting", err)
	}
	defer c.Close()
	if e.ch.StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return permanent(errors.New("the server does not offer STARTTLS (starttls: true)"))
		}
		if err := c.StartTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}); err != nil {
			return smtpError("starttls", err)
		}
	}
	if e.ch.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", e.ch.Username, e.ch.Password, host)); err != nil {
			var tp *textproto.Error
			if !errors.As(err, &tp) {
				// net/smtp refusing PLAIN over plain text: a config error.
				return permanent(fmt.Errorf("auth: %w", err))
			}
			return smtpError("auth", err)
		}
	}
	if err := c.Mail(e.from.Address); err != nil {
		return smtpError("mail from", err)
	}
	for _, to := range e.to {
		if err := c.Rcpt(to.Address); err != nil {
			return smtpError("rcpt to "+to.Address, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return smtpError("data", err)
	}
	if _, err := w.Write(msg); err != nil {
		return smtpError("data", err)
	}
	if err := w.Close(); err != nil {
		return smtpError("data", err)
	}
	_ = c.Quit() // the message is accepted; a failed QUIT changes nothing
	return nil
}

// smtpError wraps err from step; 5xx replies are permanent, 4xx replies
// and connection errors are retried.
func smtpError(step string, err error) error {
	err = fmt.Errorf("%s: %w", step, err)
	var tp *textproto.Error
	if errors.As(err, &tp) && tp.Code >= 500 {
		return permanent(err)
	}
	return err
}
