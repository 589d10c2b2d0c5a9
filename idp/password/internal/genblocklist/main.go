// Command genblocklist writes the list of passwords that password.CheckPolicy refuses as too
// common, from two sources:
//
//   - zxcvbn's frequency lists (github.com/trustelem/zxcvbn/frequency, MIT): the 30,000 most
//     common passwords of its leaked-password corpus and the words it would guess first: English
//     words (Wikipedia; TV and film subtitles), US census names and surnames. zxcvbn puts a word
//     that is in several lists in only one of them, so "christmas", "jennifer" and "basketball"
//     are not in its password list but in the others: all of them are needed.
//   - Openwall's public-domain password.lst (openwall.txt, 3,546 entries; lines starting with
//     "#!" are comments), which has a few dozen entries zxcvbn lacks ("hellohello", "!@#$%^&*").
//
// Each entry is NFKC-normalised, trimmed and lower-cased as CheckPolicy does to a password; the
// result is sorted bytewise, one entry a line, so that the package can search it in place without
// loading it. Run it through go generate in idp/password after updating either source.
package main

import (
	_ "embed"
	"flag"
	"log"
	"os"
	"slices"
	"strings"

	"github.com/trustelem/zxcvbn/frequency"
	"golang.org/x/text/unicode/norm"
)

//go:embed openwall.txt
var openwall string

func main() {
	out := flag.String("o", "blocklist.txt", "file to write")
	flag.Parse()
	if err := os.WriteFile(*out, build(), 0o644); err != nil {
		log.Fatal(err)
	}
}

// build returns the sorted, deduplicated list, one entry a line, each line ending in "\n".
func build() []byte {
	var all []string
	add := func(w string) {
		if w = strings.ToLower(strings.TrimSpace(norm.NFKC.String(w))); w != "" {
			all = append(all, w)
		}
	}
	for _, list := range frequency.FrequencyLists {
		for _, w := range list {
			add(w)
		}
	}
	for line := range strings.Lines(openwall) {
		if !strings.HasPrefix(line, "#!") {
			add(line)
		}
	}
	slices.Sort(all)
	all = slices.Compact(all)
	return []byte(strings.Join(all, "\n") + "\n")
}
