package oauth

import (
	"context"

	"github.com/portcullis/portcullis/storage"
	"github.com/portcullis/portcullis/templates"
)

// builtinScopeDescription says, in the words of the person consenting,
// what a standard scope lets the application do. Config.ScopeDescriptions
// adds the operator's own scopes and may reword these.
func builtinScopeDescription(scope string) (string, bool) {
	switch scope {
	case "openid":
		return "Sign you in with your account", true
	case "profile":
		return "See your username", true
	case "email":
		return "See your email address and whether it is verified", true
	case "offline_access", "offline":
		return "Stay connected when you are not using it, until you sign out of it or withdraw access", true
	case ScopeAdmin:
		return "Manage this sign-in server as an administrator: its applications, users and security policies", true
	}
	return "", false
}

// scopeInfo pairs each scope with its description. A scope nobody
// described is shown by its name, which is all that is known of it.
func (p *Provider) scopeInfo(scopes []string) []templates.ScopeInfo {
	out := make([]templates.ScopeInfo, 0, len(scopes))
	for _, s := range scopes {
		d, ok := p.cfg.ScopeDescriptions[s]
		if !ok {
			d, ok = builtinScopeDescription(s)
		}
		if !ok {
			d = "Use the permission “" + s + "”"
		}
		out = append(out, templates.ScopeInfo{Name: s, Description: d})
	}
	return out
}

// appOf is how the pages name a client to the person signing in.
func appOf(c *storage.Client) templates.App {
	name := c.Name
	if name == "" {
		name = c.ID
	}
	return templates.App{Name: name, LogoURI: c.LogoURI, PolicyURI: c.PolicyURI, TosURI: c.TosURI}
}

// app is appOf for a client id; nil when there is none or it is unknown.
func (p *Provider) app(ctx context.Context, clientID string) *templates.App {
	if clientID == "" {
		return nil
	}
	fc, err := p.cfg.Store.GetClient(ctx, clientID)
	if err != nil {
		return nil
	}
	c, ok := fc.(*storage.Client)
	if !ok {
		return nil
	}
	a := appOf(c)
	return &a
}
