package admin

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"github.com/portcullis/portcullis/fielderr"
	"github.com/portcullis/portcullis/policies"
	"github.com/portcullis/portcullis/reqinfo"
)

// checkAddress refuses a request whose client address the global IP rules
// refuse, when they guard the admin API (ip.apply_to lists "admin"). It
// runs before the token is looked at, so a refused address costs nothing
// and learns nothing about the token it sent. Applications' rules do not
// count here: the admin API belongs to none of them.
func (h *handler) checkAddress(r *http.Request) error {
	if h.policies == nil {
		return nil
	}
	ip := h.policies.Global().IP
	if !ip.Guards(policies.IPSurfaceAdmin) {
		return nil
	}
	rules, err := h.ipRules.Rules("", ip)
	if err != nil {
		// Validation keeps such a policy out of the engine; refusing is
		// the safe answer if one got in regardless.
		return fmt.Errorf("global ip rules: %w", err)
	}
	addr := reqinfo.From(r.Context()).IP
	if ok, rule := policies.IPAllowed(rules, rules, addr); !ok {
		return &apiError{
			status: http.StatusForbidden, code: "access_denied",
			description: "the IP rules do not allow the admin API to be used from this address",
			cause:       fmt.Errorf("%s refuses %s", rule, addrText(addr)),
		}
	}
	return nil
}

// keepsCallerIn refuses a global patch after which the IP rules would
// refuse the administrator's own address on the admin API: the change
// could then only be undone by editing the database or config.toml on
// the server. A patch that is invalid for another reason is left to the
// engine, which names every key at fault.
func (h *handler) keepsCallerIn(r *http.Request, patch []byte) error {
	after, err := policies.ApplyPatch(h.policies.Global(), patch)
	if err != nil {
		return nil
	}
	if _, err := after.Validate(); err != nil || !after.IP.Guards(policies.IPSurfaceAdmin) {
		return nil
	}
	rules, err := after.IP.Rules()
	if err != nil {
		return nil
	}
	addr := reqinfo.From(r.Context()).IP
	if ok, _ := policies.IPAllowed(rules, rules, addr); ok {
		return nil
	}
	fe := &fielderr.Error{}
	fe.Add("ip", "this change would block your own address (%s) from the admin API; allow it, or leave %q out of ip.apply_to", addrText(addr), policies.IPSurfaceAdmin)
	return &apiError{
		status: http.StatusUnprocessableEntity, code: "invalid_policy",
		description: "the policy was refused and nothing was changed: " + fe.Error(),
		fields:      fe.Fields, cause: errors.New("the patch would lock the caller out of the admin API"),
	}
}

// addrText is addr for messages; the server may not know it.
func addrText(addr netip.Addr) string {
	if !addr.IsValid() {
		return "unknown"
	}
	return addr.String()
}
