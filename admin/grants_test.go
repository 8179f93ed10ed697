package admin

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/portcullis/portcullis/oauth"
)

// The admin API's schema lists exactly the grant types the server serves:
// one registry, oauth.GrantTypes, and this test keeps the hand-written
// document in step with it.
func TestOpenAPIGrantTypesFollowTheRegistry(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Items struct {
						Enum []string `json:"enum"`
					} `json:"items"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openAPIDocument, &doc); err != nil {
		t.Fatal(err)
	}
	found := 0
	for name, s := range doc.Components.Schemas {
		gt, ok := s.Properties["grant_types"]
		if !ok || gt.Items.Enum == nil {
			continue // a response schema, which lists no choices
		}
		found++
		if !slices.Equal(gt.Items.Enum, oauth.GrantTypes()) {
			t.Errorf("schema %s: grant_types enum %v, want %v", name, gt.Items.Enum, oauth.GrantTypes())
		}
	}
	if found == 0 {
		t.Fatal("no schema lists the grant types a client may choose")
	}
}
