package authn

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strings"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/storage"
)

// Account links are the single-use links mailed to an account's owner:
// email verification, activation of an account an administrator created
// (its owner sets the first password) and password reset. The token is in
// the link only; the database keeps its SHA-256, so a copy of the table
// opens no account. Using one is a single conditional update: of parallel
// clicks exactly one succeeds.

// Link kinds.
const (
	LinkVerifyEmail = storage.AccountLinkVerifyEmail
	LinkActivation  = storage.AccountLinkActivation
	LinkReset       = storage.AccountLinkReset
)

// Paths of the pages the links lead to.
const (
	VerifyEmailPath   = "/verify-email"
	ActivatePath      = "/activate"
	ResetPasswordPath = "/reset-password"
	ForgotPath        = "/forgot-password"
	RegisterPath      = "/register"
)

// ErrLinkInvalid means a link is unknown, used, superseded or expired:
// one page for all, since which it is helps nobody but a guesser.
var ErrLinkInvalid = errors.New("account link invalid or expired")

// LinkStore is what Links needs from storage.
type LinkStore interface {
	CreateAccountLink(ctx context.Context, l *storage.AccountLink) error
	UseAccountLink(ctx context.Context, kind, tokenHash string) (*storage.AccountLink, error)
	PeekAccountLink(ctx context.Context, kind, tokenHash string) (*storage.AccountLink, error)
	InvalidateAccountLinks(ctx context.Context, userID, kind string) (int64, error)
	MarkEmailVerified(ctx context.Context, userID, email string) (bool, error)
	User(ctx context.Context, id string) (*storage.User, error)
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
}

var _ LinkStore = (*storage.Store)(nil)

// LinkMail is a mail carrying an account link.
type LinkMail struct {
	Kind     string
	To       string
	UserID   string
	Username string
	Link     string
	// ExpiresIn is the link's lifetime, for the mail to say.
	ExpiresIn time.Duration
}

// LinkMailer queues a mail for sending and reports whether it did (false
// when email is off or the queue is full). It must not block: a request
// never waits on a mail server.
type LinkMailer func(m LinkMail) bool

// LinksConfig configures Links.
type LinksConfig struct {
	Store LinkStore
	// Mail queues the mails; nil means email is off, and no link can be
	// sent.
	Mail LinkMailer
	// Issuer is the server's issuer URL, which every link starts with.
	Issuer   string
	Policies PolicySource
	Recorder *audit.Recorder
	Now      func() time.Time
}

// Links makes, mails and redeems account links.
type Links struct {
	store    LinkStore
	mail     LinkMailer
	issuer   string
	policies PolicySource
	recorder *audit.Recorder
	now      func() time.Time
}

// NewLinks returns the account links service.
func NewLinks(cfg LinksConfig) *Links {
	l := &Links{store: cfg.Store, mail: cfg.Mail, issuer: strings.TrimRight(cfg.Issuer, "/"),
		policies: cfg.Policies, recorder: cfg.Recorder, now: cfg.Now}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// CanMail reports whether links can be sent at all: with email off, the
// pages that would promise one are not offered.
func (l *Links) CanMail() bool { return l != nil && l.mail != nil }

// TTL is the lifetime of a link of kind under the global policy: the
// account's, which every application shares.
func (l *Links) TTL(kind string) time.Duration {
	r := l.policies("").Registration
	if kind == LinkReset {
		return r.ResetLinkTTL.D()
	}
	return r.ActivationLinkTTL.D()
}

// Send mails u's address a new link of kind, in place of any live one of
// that kind, and records an account_link.sent event by actor. It reports
// whether a mail was queued: not when the account has no address or email
// is off, which the caller answers the same way as a sent one where the
// difference would tell whether an account exists.
func (l *Links) Send(ctx context.Context, u *storage.User, kind string, actor Actor) (bool, error) {
	if !l.CanMail() || u.Email == "" {
		return false, nil
	}
	token, hash := storage.NewAccountLinkToken()
	now := l.now().UTC()
	ttl := l.TTL(kind)
	link := &storage.AccountLink{Kind: kind, TokenHash: hash, UserID: u.ID, Email: u.Email, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	err := l.store.InTx(ctx, func(ctx context.Context) error {
		// One live link of a kind: the newest mail is the one that works.
		if _, err := l.store.InvalidateAccountLinks(ctx, u.ID, kind); err != nil {
			return err
		}
		if err := l.store.CreateAccountLink(ctx, link); err != nil {
			return err
		}
		return record(ctx, l.recorder, actor, audit.Event{Type: audit.TypeLinkSent, UserID: u.ID, Reason: kind,
			Details: map[string]any{"expires_at": link.ExpiresAt.Format(time.RFC3339)}})
	})
	if err != nil {
		return false, fmt.Errorf("send %s link to user %s: %w", kind, u.ID, err)
	}
	return l.mail(LinkMail{Kind: kind, To: u.Email, UserID: u.ID, Username: u.Username,
		Link: l.issuer + pathOf(kind) + "?" + url.Values{"token": {token}}.Encode(), ExpiresIn: ttl}), nil
}

func pathOf(kind string) string {
	switch kind {
	case LinkVerifyEmail:
		return VerifyEmailPath
	case LinkActivation:
		return ActivatePath
	default:
		return ResetPasswordPath
	}
}

// Peek returns the live link of kind that token names and its account,
// without using it: the page it opens shows a form first. ErrLinkInvalid
// when there is none.
func (l *Links) Peek(ctx context.Context, kind, token string) (*storage.AccountLink, *storage.User, error) {
	link, err := l.store.PeekAccountLink(ctx, kind, storage.HashLinkToken(token))
	if err != nil {
		return nil, nil, linkErr(err)
	}
	u, err := l.store.User(ctx, link.UserID)
	if err != nil {
		return nil, nil, linkErr(err)
	}
	return link, u, nil
}

// use consumes the link; it must run in the transaction of what the link
// does, so that a failure there leaves it usable.
func (l *Links) use(ctx context.Context, kind, token string) (*storage.AccountLink, error) {
	link, err := l.store.UseAccountLink(ctx, kind, storage.HashLinkToken(token))
	return link, linkErr(err)
}

// VerifyEmail uses a verification link: the address it was sent to is
// verified if it is still the account's. It returns the account.
func (l *Links) VerifyEmail(ctx context.Context, token string, actor func(*storage.User) Actor) (*storage.User, error) {
	var u *storage.User
	err := l.store.InTx(ctx, func(ctx context.Context) error {
		link, err := l.use(ctx, LinkVerifyEmail, token)
		if err != nil {
			return err
		}
		if u, err = l.store.User(ctx, link.UserID); err != nil {
			return linkErr(err)
		}
		ok, err := l.store.MarkEmailVerified(ctx, u.ID, link.Email)
		if err != nil {
			return err
		}
		if !ok {
			return ErrLinkInvalid // the account's address changed since
		}
		u.EmailVerified = true
		return record(ctx, l.recorder, actor(u), audit.Event{Type: audit.TypeEmailVerified, UserID: u.ID})
	})
	if err != nil {
		return nil, fmt.Errorf("verify email: %w", err)
	}
	return u, nil
}

// linkErr turns a link or user that is not there into ErrLinkInvalid.
func linkErr(err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return ErrLinkInvalid
	}
	return err
}

// record writes e as actor's successful change to recorder.
func record(ctx context.Context, recorder *audit.Recorder, actor Actor, e audit.Event) error {
	e.Actor = actor.ID
	e.Outcome = audit.OutcomeSuccess
	if len(actor.Details) > 0 {
		if e.Details == nil {
			e.Details = map[string]any{}
		}
		maps.Copy(e.Details, actor.Details)
	}
	return recorder.Record(ctx, e)
}
