package alert_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/jetworker/jetworker/modules/alert"
)

const exampleYAML = `
queue_size: 256
rules:
  - name: demo-failures
    app: demo
    on: [failed, missed]
    silence: 10m
    channels: [ops-hook, ops-mail]
  - app: demo
    job: "42"
    on: [failure_rate]
    window: 10m
    threshold: 0.5
    min_runs: 5
    channels: [ops-hook]
channels:
  ops-hook:
    type: webhook
    url: https://hooks.example.com/jetworker
    secret: s3cret
    headers: {Authorization: Bearer abc}
    max_attempts: 3
  ops-mail:
    type: email
    smtp_addr: smtp.example.com:587
    from: jetworker@example.com
    to: [ops@example.com]
    username: jetworker
    password: pw
    starttls: true
    timeout: 20s
`

func TestAlertConfig_DecodesFromYAML(t *testing.T) {
	t.Parallel()
	cfg := alert.Default()
	dec := yaml.NewDecoder(strings.NewReader(exampleYAML))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&cfg))
	require.NoError(t, cfg.Validate())

	require.Equal(t, 256, cfg.QueueSize)
	require.Equal(t, alert.DefaultSenders, cfg.Senders)
	require.Equal(t, []alert.Kind{alert.KindFailed, alert.KindMissed}, cfg.Rules[0].On)
	require.Equal(t, 10*time.Minute, cfg.Rules[0].Silence)
	require.Equal(t, 0.5, cfg.Rules[1].Threshold)
	require.Equal(t, 5, cfg.Rules[1].MinRuns)
	require.Equal(t, "Bearer abc", cfg.Channels["ops-hook"].Headers["Authorization"])
	require.True(t, cfg.Channels["ops-mail"].StartTLS)
	require.Equal(t, 20*time.Second, cfg.Channels["ops-mail"].Timeout)

	_, err := alert.New(cfg, nil, nil)
	require.NoError(t, err)
}

func TestAlertConfig_ValidateNamesFieldAndValue(t *testing.T) {
	t.Parallel()
	valid := func() alert.Config {
		cfg := alert.Default()
		cfg.Channels = map[string]alert.Channel{
			"hook": {Type: alert.ChannelWebhook, URL: "http://127.0.0.1:9/x"},
			"mail": {Type: alert.ChannelEmail, SMTPAddr: "127.0.0.1:25", From: "a@example.com", To: []string{"b@example.com"}},
		}
		cfg.Rules = []alert.Rule{{App: "demo", On: []alert.Kind{alert.KindFailed}, Channels: []string{"hook", "mail"}}}
		return cfg
	}
	require.NoError(t, valid().Validate())
	require.NoError(t, alert.Default().Validate(), "no rules is valid: no alerts")

	cases := []struct {
		name string
		edit func(*alert.Config)
		want string
	}{
		{"unknown channel", func(c *alert.Config) { c.Rules[0].Channels = []string{"x"} },
			`alert.rules[0].channels: unknown channel "x"`},
		{"no channels", func(c *alert.Config) { c.Rules[0].Channels = nil }, `alert.rules[0].channels: required`},
		{"no app", func(c *alert.Config) { c.Rules[0].App = "" }, `alert.rules[0].app: required`},
		{"no kinds", func(c *alert.Config) { c.Rules[0].On = nil }, `alert.rules[0].on: required`},
		{"bad kind", func(c *alert.Config) { c.Rules[0].On = []alert.Kind{"exploded"} },
			`alert.rules[0].on: "exploded" is not failed, missed or failure_rate`},
		{"rate without threshold", func(c *alert.Config) { c.Rules[0].On = []alert.Kind{alert.KindFailureRate} },
			`alert.rules[0].threshold: 0 is not in (0, 1]`},
		{"threshold over 1", func(c *alert.Config) {
			c.Rules[0].On, c.Rules[0].Threshold = []alert.Kind{alert.KindFailureRate}, 1.5
		}, `alert.rules[0].threshold: 1.5 is not in (0, 1]`},
		{"threshold without rate", func(c *alert.Config) { c.Rules[0].Threshold = 0.5 },
			`alert.rules[0].threshold: 0.5 is set but on has no failure_rate`},
		{"short window", func(c *alert.Config) { c.Rules[0].Window = time.Millisecond }, `alert.rules[0].window: 1ms is under 1s`},
		{"negative min_runs", func(c *alert.Config) { c.Rules[0].MinRuns = -1 }, `alert.rules[0].min_runs: -1 is negative`},
		{"negative silence", func(c *alert.Config) { c.Rules[0].Silence = -time.Second }, `alert.rules[0].silence: -1s is not in`},
		{"silence too long", func(c *alert.Config) { c.Rules[0].Silence = 200 * time.Hour }, `alert.rules[0].silence: 200h0m0s is not in`},
		{"duplicate names", func(c *alert.Config) {
			c.Rules[0].Name = "r"
			c.Rules = append(c.Rules, c.Rules[0])
		}, `alert.rules[1].name: "r" is also the name of rules[0]`},
		{"bad type", func(c *alert.Config) { c.Channels["hook"] = alert.Channel{Type: "pager"} },
			`alert.channels.hook.type: "pager" is not webhook or email`},
		{"bad url", func(c *alert.Config) { c.Channels["hook"] = alert.Channel{Type: "webhook", URL: "ftp://x"} },
			`alert.channels.hook.url: "ftp://x" is not an http or https URL`},
		{"bad header", func(c *alert.Config) {
			c.Channels["hook"] = alert.Channel{Type: "webhook", URL: "http://x", Headers: map[string]string{"X-A\r\nB": "v"}}
		}, `alert.channels.hook.headers: "X-A\r\nB" is not a valid header`},
		{"bad smtp_addr", func(c *alert.Config) {
			ch := c.Channels["mail"]
			ch.SMTPAddr = "smtp.example.com"
			c.Channels["mail"] = ch
		}, `alert.channels.mail.smtp_addr: "smtp.example.com" is not host:port`},
		{"bad from", func(c *alert.Config) {
			ch := c.Channels["mail"]
			ch.From = "nobody"
			c.Channels["mail"] = ch
		}, `alert.channels.mail.from: "nobody" is not an email address`},
		{"no to", func(c *alert.Config) {
			ch := c.Channels["mail"]
			ch.To = nil
			c.Channels["mail"] = ch
		}, `alert.channels.mail.to: required`},
		{"password without username", func(c *alert.Config) {
			ch := c.Channels["mail"]
			ch.Password = "pw"
			c.Channels["mail"] = ch
		}, `alert.channels.mail.username: required when password is set`},
		{"negative timeout", func(c *alert.Config) {
			ch := c.Channels["hook"]
			ch.Timeout = -time.Second
			c.Channels["hook"] = ch
		}, `alert.channels.hook.timeout: -1s is negative`},
		{"max_attempts", func(c *alert.Config) {
			ch := c.Channels["hook"]
			ch.MaxAttempts = -1
			c.Channels["hook"] = ch
		}, `alert.channels.hook.max_attempts: -1 is not in 1..100`},
		{"queue_size", func(c *alert.Config) { c.QueueSize = -1 }, `alert.queue_size: -1 is not in`},
		{"senders", func(c *alert.Config) { c.Senders = 1000 }, `alert.senders: 1000 is not in 1..64`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid()
			tc.edit(&cfg)
			err := cfg.Validate()
			require.ErrorContains(t, err, tc.want)
			_, err = alert.New(cfg, nil, nil)
			require.ErrorContains(t, err, tc.want, "New validates")
		})
	}
}
