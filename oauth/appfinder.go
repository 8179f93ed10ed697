package oauth

import (
	"context"
	"net/url"

	"github.com/portcullis/portcullis/templates"
)

// AppForReturnTo names the application a login page leads back to: the
// client of the authorization request returnTo points at, so that the page
// can say whom the person is signing in to. Any other path, and a request
// without a known client, names none. It only names: the authorization
// endpoint checks the request again when the browser gets there.
func (p *Provider) AppForReturnTo(ctx context.Context, returnTo string) (*templates.App, bool) {
	u, err := url.Parse(returnTo)
	// The path Register mounts the authorization endpoint on.
	if err != nil || u.Path != "/oauth2/auth" {
		return nil, false
	}
	app := p.app(ctx, u.Query().Get("client_id"))
	return app, app != nil
}
