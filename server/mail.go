package server

import (
	"fmt"
	"time"

	"github.com/portcullis/portcullis/authn"
	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/notify"
)

// NewMailer maps [smtp] onto the SMTP sender; nil, with no error, when no
// smtp.host is set and mail is off. The CLI uses it too.
func NewMailer(cfg *config.Config, now func() time.Time) (*notify.Mailer, error) {
	if !cfg.SMTP.Enabled() {
		return nil, nil
	}
	m, err := notify.NewMailer(notify.Config{
		Host: cfg.SMTP.Host, Port: cfg.SMTP.Port, From: cfg.SMTP.From, TLS: notify.TLSMode(cfg.SMTP.TLS),
		Username: cfg.SMTP.Username, Password: cfg.SMTP.Password, Timeout: cfg.SMTP.Timeout.Duration, Now: now,
	})
	if err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	return m, nil
}

// LinkQueue hands authn's link mails to the account mail queue.
func LinkQueue(mails *notify.AccountMails) authn.LinkMailer {
	return func(m authn.LinkMail) bool {
		return mails.Enqueue(notify.AccountMail{Kind: m.Kind, To: m.To, UserID: m.UserID,
			Username: m.Username, Link: m.Link, ExpiresIn: m.ExpiresIn})
	}
}
