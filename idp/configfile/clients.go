package configfile

import (
	"bytes"
	"encoding/json"
	"fmt"

	"jwtidp/idp/auth"
	"jwtidp/idp/httpapi"
	"jwtidp/shared/apperr"
)

// ParseClients reads a --clients file: a JSON array of client objects (API.md), with no
// unknown member and no client twice. Errors name the client; none carries a secret.
func ParseClients(b []byte) ([]httpapi.ClientInfo, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("not a JSON array of clients: %v", err)
	}
	seen := map[string]bool{}
	out := make([]httpapi.ClientInfo, 0, len(raw))
	for i, r := range raw {
		var ci httpapi.ClientInfo
		dec := json.NewDecoder(bytes.NewReader(r))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ci); err != nil {
			return nil, fmt.Errorf("client %d: %v", i+1, err)
		}
		if err := CheckClient(i, ci, seen); err != nil {
			return nil, err
		}
		out = append(out, ci)
	}
	return out, nil
}

// CheckClient checks the i-th client (from 0) of a file, and that no client before it (seen)
// has its id, as the store will: errors name it by its place and id, never its secret.
func CheckClient(i int, ci httpapi.ClientInfo, seen map[string]bool) error {
	name := fmt.Sprintf("client %d (%q)", i+1, ci.ClientID)
	if ci.CreatedAt != nil {
		return fmt.Errorf("%s: created_at is not set in a file", name)
	}
	if ci.RegisteredBy != "" {
		return fmt.Errorf("%s: registered_by is not set in a file", name)
	}
	if seen[ci.ClientID] {
		return fmt.Errorf("%s: declared twice", name)
	}
	seen[ci.ClientID] = true
	if err := auth.CheckDeclaredClient(ci.Client(), ci.ClientSecret); err != nil {
		return fmt.Errorf("%s: %s", name, apperr.Message(err))
	}
	return nil
}
