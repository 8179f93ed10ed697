package policystore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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

type snapshot struct {
	version int64
	global  policies.Policy
	clients map[string]policies.Policy
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

// For is the policy that judges requests for clientID: its own when it
// customizes its rules, the global one otherwise.
func (e *Engine) For(clientID string) policies.Policy {
	s := e.snap.Load()
	if p, ok := s.clients[clientID]; ok {
		return p
	}
	return s.global
}

// Client reports whether clientID customizes its rules, and its policy.
func (e *Engine) Client(clientID string) (customized bool, p policies.Policy) {
	s := e.snap.Load()
	if p, ok := s.clients[clientID]; ok {
		return true, p
	}
	return false, s.global
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
	s := &snapshot{version: version, global: e.base, clients: map[string]policies.Policy{}}
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
		p, err := policies.ApplyPatch(policies.Defaults(), []byte(d.Document))
		if err != nil {
			// A stored document this version cannot read must not take the
			// server down; the application falls back to the global rules.
			e.logger.Error("unreadable application policy; using the global policy", "client_id", id, "err", err.Error())
			continue
		}
		s.clients[id] = p
	}
	e.snap.Store(s)
	return nil
}

// Change is the outcome of a successful patch.
type Change struct {
	Customized bool
	Policy     policies.Policy
	Warnings   []fielderr.Field
	// Revoked counts tokens revoked because revoke_on_change was set and a
	// lifetime changed.
	Revoked int64
}

// PatchGlobal applies a JSON merge patch to the global policy. An invalid
// patch or result changes nothing and returns an error wrapping ErrInvalid
// and a *fielderr.Error.
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

// PatchClient changes an application's rules. The patch is a JSON object
// whose "customized" member (optional) switches customization: true
// snapshots the current global policy into the application, false returns
// it to the global rules. Its other members patch the application's own
// policy, which requires customization.
func (e *Engine) PatchClient(ctx context.Context, actor, clientID string, patch []byte) (*Change, error) {
	customize, rest, err := splitCustomized(patch)
	if err != nil {
		return nil, err
	}
	var ch *Change
	err = e.store.InTx(ctx, func(ctx context.Context) error {
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
		before, wasCustom := global, false
		switch d, err := e.store.PolicyDocument(ctx, scope); {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return err
		default:
			if before, err = policies.ApplyPatch(policies.Defaults(), []byte(d.Document)); err != nil {
				return err
			}
			wasCustom = true
		}
		custom := wasCustom
		if customize != nil {
			custom = *customize
		}
		if !custom {
			if rest != nil {
				return invalid("customized", "must be true to change an application's own rules")
			}
			if err := e.store.DeletePolicyDocument(ctx, scope); err != nil {
				return err
			}
			ch = &Change{Customized: false, Policy: global}
			return e.audit(ctx, actor, scope, clientID, before, global, ch)
		}
		after, warnings := before, []fielderr.Field(nil)
		if rest != nil {
			if after, warnings, err = patchAndValidate(before, rest); err != nil {
				return err
			}
		}
		doc := after.Canonical()
		if err := e.store.PutPolicyDocument(ctx, &storage.PolicyDocument{Scope: scope, Document: string(doc), UpdatedBy: actor}); err != nil {
			return err
		}
		ch = &Change{Customized: true, Policy: after, Warnings: warnings}
		if after.Token.RevokeOnChange && policies.LifetimesChanged(before, after) {
			if ch.Revoked, err = e.store.RevokeTokens(ctx, storage.TokenFilter{ClientID: clientID}); err != nil {
				return err
			}
		}
		return e.audit(ctx, actor, scope, clientID, before, after, ch)
	})
	if err != nil {
		return nil, err
	}
	e.logWarnings(ctx, actor, ch)
	return ch, e.reload(ctx, true)
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
	if e.rec == nil {
		return nil
	}
	details := map[string]any{
		"scope":      scope,
		"customized": ch.Customized,
		"before":     json.RawMessage(before.Canonical()),
		"after":      json.RawMessage(after.Canonical()),
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

// splitCustomized takes the "customized" member out of a client patch.
func splitCustomized(patch []byte) (*bool, []byte, error) {
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(patch))
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, nil, invalid("", "the patch must be a JSON object")
	}
	var customize *bool
	if raw, ok := obj["customized"]; ok {
		var b bool
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, nil, invalid("customized", "must be true or false")
		}
		customize = &b
		delete(obj, "customized")
	}
	if len(obj) == 0 {
		return customize, nil, nil
	}
	rest, err := json.Marshal(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("re-encode patch: %w", err)
	}
	return customize, rest, nil
}

func invalid(field, msg string) error {
	return wrapInvalid(fielderr.New(field, "%s", msg))
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
	for _, p := range s.clients {
		longest = max(longest, signedLifetime(p))
	}
	return longest
}

func signedLifetime(p policies.Policy) time.Duration {
	return max(p.Token.AccessTokenTTL.D(), p.Token.Admin.AccessTokenTTL.D(), p.Token.IDTokenTTL.D())
}
