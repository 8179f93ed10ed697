package captcha

import (
	"slices"
	"strings"

	"github.com/portcullis/portcullis/policies"
)

// source is one source list a widget needs added to one directive.
type source struct {
	directive string
	values    []string
}

// cspSources is what each kind of widget needs of the page's policy: the
// built-in one its data: picture and recording; a provider its script and
// the frame the challenge runs in (the origins each provider documents).
func cspSources(provider string) []source {
	switch provider {
	case policies.CaptchaBuiltin:
		return []source{{"img-src", []string{"data:"}}, {"media-src", []string{"data:"}}}
	case policies.CaptchaRecaptchaV2, policies.CaptchaRecaptchaV3:
		return []source{
			{"script-src", []string{"https://www.google.com/recaptcha/", "https://www.gstatic.com/recaptcha/"}},
			{"frame-src", []string{"https://www.google.com/recaptcha/", "https://recaptcha.google.com/recaptcha/"}},
		}
	case policies.CaptchaHCaptcha:
		all := []string{"https://hcaptcha.com", "https://*.hcaptcha.com"}
		return []source{{"script-src", all}, {"frame-src", all}, {"style-src", all}, {"connect-src", all}}
	case policies.CaptchaTurnstile:
		return []source{
			{"script-src", []string{"https://challenges.cloudflare.com"}},
			{"frame-src", []string{"https://challenges.cloudflare.com"}},
		}
	}
	return nil
}

// ContentSecurityPolicy is base, the page's Content-Security-Policy,
// widened by exactly what this widget needs, for the page that shows it:
// a policy loosened for every page to let a captcha work would let every
// page load a third party's script.
//
// A directive base lacks starts from default-src, which it would
// otherwise fall back to, so that adding media-src data: to "default-src
// 'self'" keeps 'self' for media; 'none' gives way to what is added.
func (w *Widget) ContentSecurityPolicy(base string) string {
	type directive struct {
		name   string
		values []string
	}
	var dirs []directive
	for part := range strings.SplitSeq(base, ";") {
		fields := strings.Fields(part)
		if len(fields) == 0 {
			continue
		}
		dirs = append(dirs, directive{strings.ToLower(fields[0]), fields[1:]})
	}
	find := func(name string) int {
		return slices.IndexFunc(dirs, func(d directive) bool { return d.name == name })
	}
	for _, add := range cspSources(w.Provider) {
		i := find(add.directive)
		if i < 0 {
			var inherited []string
			if j := find("default-src"); j >= 0 {
				inherited = slices.Clone(dirs[j].values)
			}
			dirs = append(dirs, directive{add.directive, inherited})
			i = len(dirs) - 1
		}
		values := slices.DeleteFunc(dirs[i].values, func(v string) bool { return strings.EqualFold(v, "'none'") })
		for _, v := range add.values {
			if !slices.Contains(values, v) {
				values = append(values, v)
			}
		}
		dirs[i].values = values
	}
	parts := make([]string, len(dirs))
	for i, d := range dirs {
		parts[i] = strings.Join(append([]string{d.name}, d.values...), " ")
	}
	return strings.Join(parts, "; ")
}
