package main

import (
	"bytes"
	"os"
	"testing"
)

// The committed list is what the generator makes from the sources in go.mod: updating zxcvbn or
// openwall.txt without running go generate fails here.
func TestBlocklistUpToDate(t *testing.T) {
	have, err := os.ReadFile("../../blocklist.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, build()) {
		t.Fatal("idp/password/blocklist.txt is stale: run go generate ./idp/password/")
	}
}
