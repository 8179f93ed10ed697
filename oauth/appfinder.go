package oauth

import (
	"context"

	"github.com/portcullis/portcullis/templates"
)

// AppForClient names an application for the login page, so that it can
// say whom the person is signing in to; false for an unknown client.
func (p *Provider) AppForClient(ctx context.Context, clientID string) (*templates.App, bool) {
	app := p.app(ctx, clientID)
	return app, app != nil
}
