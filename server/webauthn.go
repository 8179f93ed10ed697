package server

import (
	"fmt"
	"log/slog"
	"net"

	"github.com/portcullis/portcullis/config"
	"github.com/portcullis/portcullis/mfa"
)

// newWebAuthn sets up passkeys from [webauthn], whose relying-party id and
// origins default to the issuer's host and origin. It also returns the
// service's name, which authenticator apps show above their codes.
// WebAuthn works only for a host name: on an issuer at an IP address with
// no rp_id configured, passkeys are off (nil) and the log says why.
func newWebAuthn(cfg *config.Config, logger *slog.Logger) (*mfa.WebAuthn, string, error) {
	rpID, name, origins, err := cfg.WebAuthn.Resolve(cfg.Server.Issuer)
	if err != nil {
		return nil, "", fmt.Errorf("webauthn: %w", err)
	}
	if net.ParseIP(rpID) != nil {
		logger.Warn("passkeys are off: the issuer is an IP address, and WebAuthn needs a host name (set webauthn.rp_id)",
			slog.String("issuer", cfg.Server.Issuer))
		return nil, name, nil
	}
	w, err := mfa.NewWebAuthn(mfa.WebAuthnConfig{RPID: rpID, RPDisplayName: name, Origins: origins})
	if err != nil {
		return nil, "", fmt.Errorf("webauthn: %w", err)
	}
	return w, name, nil
}
