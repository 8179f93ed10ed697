package policystore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/portcullis/portcullis/audit"
	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/storage"
)

// Store is what the engine needs from storage.
type Store interface {
	InTx(ctx context.Context, fn func(ctx context.Context) error) error
	BumpPolicyVersion(ctx context.Context) (int64, error)
	PolicyVersion(ctx context.Context) (int64, error)
	PolicyDocuments(ctx context.Context) ([]storage.PolicyDocument, error)
	PolicyDocument(ctx context.Context, scope string) (*storage.PolicyDocument, error)
	PutPolicyDocument(ctx context.Context, d *storage.PolicyDocument) error
	DeletePolicyDocument(ctx context.Context, scope string) error
	RevokeTokens(ctx context.Context, f storage.TokenFilter) (int64, error)
	Client(ctx context.Context, id string) (*storage.Client, error)
}

// Recorder receives the audit event of every change.
type Recorder interface {
	Record(ctx context.Context, e audit.Event) error
}

// ErrInvalid wraps a *fielderr.Error when a patch or the document it
// produces is refused; nothing was changed.
var ErrInvalid = errors.New("invalid policy")

// Engine answers "which rules apply to this client" from memory and
// applies changes through the database.
type Engine struct {
	store  Store
	base   policies.Policy
	rec    Recorder
	logger *slog.Logger
	now    func() time.Time
	snap   atomic.Pointer[snapshot]
}

// snapshot is one loaded policy version. Every customized application's
// effective policy is worked out when the snapshot is built, so that For, on
// the token endpoint's path, is one map lookup; a global change builds a new
// snapshot, which is how it reaches the sections applications left alone.
type snapshot struct {
	version int64
	global  policies.Policy
	clients map[string]policies.ClientPolicy
}

// New loads the stored policies on top of base (the defaults with
// config.toml applied).
func New(ctx context.Context, store Store, base policies.Policy, rec Recorder, logger *slog.Logger, now func() time.Time) (*Engine, error) {
	e := &Engine{store: store, base: base, rec: rec, logger: logger, now: now}
	if err := e.reload(ctx, true); err != nil {
		return nil, err
	}
	return e, nil
}

// Global is the effective global policy.
func (e *Engine) Global() policies.Policy { return e.snap.Load().global }

// For is the policy that judges requests for clientID, section by section:
// its own for the sections it customizes, the global one for the others.
func (e *Engine) For(clientID string) policies.Policy {
	s := e.snap.Load()
	if c, ok := s.clients[clientID]; ok {
		return c.Effective
	}
	return s.global
}

// Client reports whether clientID customizes any section, and its policy.
func (e *Engine) Client(clientID string) (customized bool, p policies.Policy) {
	sections, p := e.ClientSections(clientID)
	return len(sections) > 0, p
}

// ClientSections lists the sections clientID customizes, in document order
// (empty, never nil, when none), and its policy.
func (e *Engine) ClientSections(clientID string) (sections []string, p policies.Policy) {
	s := e.snap.Load()
	if c, ok := s.clients[clientID]; ok {
		return slices.Clone(c.Customized), c.Effective
	}
	return []string{}, s.global
}

// Version is the policy version this instance has loaded.
func (e *Engine) Version() int64 { return e.snap.Load().version }

// Reload picks up changes made by any instance.
func (e *Engine) Reload(ctx context.Context) error { return e.reload(ctx, false) }

func (e *Engine) reload(ctx context.Context, force bool) error {
	version, err := e.store.PolicyVersion(ctx)
	if err != nil {
		return err
	}
	if cur := e.snap.Load(); !force && cur != nil && cur.version == version {
		return nil
	}
	docs, err := e.store.PolicyDocuments(ctx)
	if err != nil {
		return err
	}
	s := &snapshot{version: version, global: e.base, clients: map[string]policies.ClientPolicy{}}
	for _, d := range docs {
		if d.Scope == storage.PolicyScopeGlobal {
			g, err := policies.Overlay(e.base, json.RawMessage(d.Document))
			if err != nil {
				return fmt.Errorf("global policy overlay: %w", err)
			}
			s.global = g
		}
	}
	for _, d := range docs {
		id, ok := strings.CutPrefix(d.Scope, "client:")
		if !ok {
			continue
		}
		c, err := policies.ResolveClient(s.global, json.RawMessage(d.Document))
		if err != nil {
			// A stored document this version cannot read must not take the
			// server down; the application falls back to the global rules.
			e.logger.Error("unreadable application policy; using the global policy", "client_id", id, "err", err.Error())
			continue
		}
		if !c.IsCustomized() {
			continue
		}
		if _, err := c.Effective.Validate(); err != nil {
			// Only a change outside the API (config.toml, an upgrade with
			// stricter rules) gets here: the API refuses to store it.
			e.logger.Error("invalid application policy; using the global policy", "client_id", id, "customized_sections", c.Customized, "err", err.Error())
			continue
		}
		s.clients[id] = c
	}
	e.snap.Store(s)
	return nil
}

// Change is the outcome of a successful patch.
type Change struct {
	// Customized reports whether the application customizes any section
	// after the change, and Sections which, in document order; both are
	// empty for a global change.
	Customized bool
	Sections   []string
	Policy     policies.Policy
	Warnings   []fielderr.Field
	// Revoked counts tokens revoked because revoke_on_change was set and a
	// lifetime changed.
	Revoked int64
}

// PatchGlobal applies a JSON merge patch to the global policy. It reaches
// every section an application does not customize. An invalid patch or
// result — including one that would leave an application's mix of own and
// global sections invalid — changes nothing and returns an error wrapping
// ErrInvalid and a *fielderr.Error.
func (e *Engine) PatchGlobal(ctx context.Context, actor string, patch []byte) (*Change, error) {
	var ch *Change
	err := e.store.InTx(ctx, func(ctx context.Context) error {
		if _, err := e.store.BumpPolicyVersion(ctx); err != nil {
			return err
		}
		var overlay json.RawMessage
		switch d, err := e.store.PolicyDocument(ctx, storage.PolicyScopeGlobal); {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return err
		default:
			overlay = json.RawMessage(d.Document)
		}
		before, err := policies.Overlay(e.base, overlay)
		if err != nil {
			return err
		}
		after, warnings, err := patchAndValidate(before, patch)
		if err != nil {
			return err
		}
		if err := e.checkClients(ctx, before, after); err != nil {
			return err
		}
		newOverlay, err := policies.MergeOverlay(overlay, patch, after)
		if err != nil {
			return err
		}
		if err := e.store.PutPolicyDocument(ctx, &storage.PolicyDocument{Scope: storage.PolicyScopeGlobal, Document: string(newOverlay), UpdatedBy: actor}); err != nil {
			return err
		}
		ch = &Change{Policy: after, Warnings: warnings}
		if after.Token.RevokeOnChange && policies.LifetimesChanged(before, after) {
			if ch.Revoked, err = e.store.RevokeTokens(ctx, storage.TokenFilter{}); err != nil {
				return err
			}
		}
		return e.audit(ctx, actor, storage.PolicyScopeGlobal, "", before, after, ch)
	})
	if err != nil {
		return nil, err
	}
	e.logWarnings(ctx, actor, ch)
	return ch, e.reload(ctx, true)
}

// PatchClient changes an application's rules; policies.PatchClient
// describes the patch. In short: {"customized": true|false} customizes every
// section or none, {"customized_sections": [...]} exactly those listed, and
// section members ({"token": {...}}) change the application's own values,
// customizing that section first — a snapshot of the current global
// section — if it was not. The result is validated as the whole policy the
// application will have; a refused patch changes nothing and returns an
// error wrapping ErrInvalid and a *fielderr.Error.
func (e *Engine) PatchClient(ctx context.Context, actor, clientID string, patch []byte) (*Change, error) {
	var ch *Change
	err := e.store.InTx(ctx, func(ctx context.Context) error {
		if _, err := e.store.Client(ctx, clientID); err != nil {
			return err
		}
		if _, err := e.store.BumpPolicyVersion(ctx); err != nil {
			return err
		}
		scope := storage.PolicyScopeClient(clientID)
		global, err := e.storedGlobal(ctx)
		if err != nil {
			return err
		}
		var doc json.RawMessage
		switch d, err := e.store.PolicyDocument(ctx, scope); {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return err
		default:
			doc = json.RawMessage(d.Document)
		}
		before, unreadable := policies.ResolveClient(global, doc)
		if unreadable != nil {
			// The application runs on the global rules (see reload); an
			// administrator may still confirm that, but not build on a
			// document this version cannot read.
			before = policies.ClientPolicy{Customized: []string{}, Effective: global}
		}
		after, err := policies.PatchClient(global, before, patch)
		if err != nil {
			return wrapInvalid(err)
		}
		if unreadable != nil && after.IsCustomized() {
			return fmt.Errorf("client %s: %w", clientID, unreadable)
		}
		warnings, err := after.Effective.Validate()
		if err != nil {
			return wrapInvalid(err)
		}
		if after.IsCustomized() {
			err = e.store.PutPolicyDocument(ctx, &storage.PolicyDocument{Scope: scope, Document: string(after.Document()), UpdatedBy: actor})
		} else {
			err = e.store.DeletePolicyDocument(ctx, scope)
		}
		if err != nil {
			return err
		}
		ch = &Change{Customized: after.IsCustomized(), Sections: after.Customized, Policy: after.Effective, Warnings: warnings}
		// Returning sections to the global policy can change lifetimes as
		// much as editing them, so it revokes alike.
		if after.Effective.Token.RevokeOnChange && policies.LifetimesChanged(before.Effective, after.Effective) {
			if ch.Revoked, err = e.store.RevokeTokens(ctx, storage.TokenFilter{ClientID: clientID}); err != nil {
				return err
			}
		}
		return e.auditClient(ctx, actor, scope, clientID, before, after, ch)
	})
	if err != nil {
		return nil, err
	}
	e.logWarnings(ctx, actor, ch)
	return ch, e.reload(ctx, true)
}

// checkClients refuses a global change that would leave an application
// that customizes some sections with an invalid policy: its other sections
// follow the global ones, and a rule spanning sections could fail on the
// mix. An application whose policy the change does not move, or was
// invalid already, is not the change's doing and does not block it.
func (e *Engine) checkClients(ctx context.Context, before, after policies.Policy) error {
	docs, err := e.store.PolicyDocuments(ctx)
	if err != nil {
		return err
	}
	var errs fielderr.Error
	for _, d := range docs {
		id, ok := strings.CutPrefix(d.Scope, "client:")
		if !ok {
			continue
		}
		was, err1 := policies.ResolveClient(before, json.RawMessage(d.Document))
		now, err2 := policies.ResolveClient(after, json.RawMessage(d.Document))
		if err1 != nil || err2 != nil || bytes.Equal(was.Effective.Canonical(), now.Effective.Canonical()) {
			continue
		}
		if _, err := was.Effective.Validate(); err != nil {
			continue
		}
		_, err := now.Effective.Validate()
		if fe, ok := fielderr.As(err); ok {
			for _, f := range fe.Fields {
				errs.Add(f.Field, "application %q customizes %s and would be left with an invalid policy: %s", id, strings.Join(now.Customized, ", "), f.Message)
			}
		}
	}
	if err := errs.Err(); err != nil {
		return wrapInvalid(err)
	}
	return nil
}

// logWarnings puts values outside the recommended ranges in the log too,
// not only in the API response, so operators see them.
func (e *Engine) logWarnings(ctx context.Context, actor string, ch *Change) {
	for _, w := range ch.Warnings {
		e.logger.WarnContext(ctx, "policy value outside the recommended range", "actor", actor, "field", w.Field, "warning", w.Message)
	}
}

// storedGlobal reads the global policy from the database rather than the
// snapshot, which may lag a change made by another instance.
func (e *Engine) storedGlobal(ctx context.Context) (policies.Policy, error) {
	d, err := e.store.PolicyDocument(ctx, storage.PolicyScopeGlobal)
	if errors.Is(err, storage.ErrNotFound) {
		return e.base, nil
	}
	if err != nil {
		return policies.Policy{}, err
	}
	return policies.Overlay(e.base, json.RawMessage(d.Document))
}

func patchAndValidate(before policies.Policy, patch []byte) (policies.Policy, []fielderr.Field, error) {
	after, err := policies.ApplyPatch(before, patch)
	if err != nil {
		return before, nil, wrapInvalid(err)
	}
	warnings, err := after.Validate()
	if err != nil {
		return before, nil, wrapInvalid(err)
	}
	return after, warnings, nil
}

func (e *Engine) audit(ctx context.Context, actor, scope, clientID string, before, after policies.Policy, ch *Change) error {
	return e.record(ctx, actor, scope, clientID, map[string]any{
		"scope":      scope,
		"customized": ch.Customized,
		"before":     json.RawMessage(before.Canonical()),
		"after":      json.RawMessage(after.Canonical()),
	}, ch)
}

// auditClient records an application's change with the sections it
// customized before and after, besides its whole policy before and after.
func (e *Engine) auditClient(ctx context.Context, actor, scope, clientID string, before, after policies.ClientPolicy, ch *Change) error {
	return e.record(ctx, actor, scope, clientID, map[string]any{
		"scope":                      scope,
		"customized":                 ch.Customized,
		"customized_sections":        after.Customized,
		"customized_sections_before": before.Customized,
		"before":                     json.RawMessage(before.Effective.Canonical()),
		"after":                      json.RawMessage(after.Effective.Canonical()),
	}, ch)
}

func (e *Engine) record(ctx context.Context, actor, scope, clientID string, details map[string]any, ch *Change) error {
	if e.rec == nil {
		return nil
	}
	if ch.Revoked > 0 {
		details["tokens_revoked"] = ch.Revoked
	}
	if len(ch.Warnings) > 0 {
		details["warnings"] = ch.Warnings
	}
	return e.rec.Record(ctx, audit.Event{
		Type: audit.TypePolicyChanged, Actor: actor, ClientID: clientID,
		Outcome: audit.OutcomeSuccess, Reason: "patched", Details: details,
	})
}

func wrapInvalid(err error) error {
	return fmt.Errorf("%w: %w", ErrInvalid, err)
}

// MaxSignedLifetime is the longest a signed token (a JWT access token or an
// ID token) can live under any policy in force, administrator overrides
// included: how long a retired signing key must stay published.
func (e *Engine) MaxSignedLifetime() time.Duration {
	s := e.snap.Load()
	longest := signedLifetime(s.global)
	for _, c := range s.clients {
		longest = max(longest, signedLifetime(c.Effective))
	}
	return longest
}

func signedLifetime(p policies.Policy) time.Duration {
	return max(p.Token.AccessTokenTTL.D(), p.Token.Admin.AccessTokenTTL.D(), p.Token.IDTokenTTL.D())
}
