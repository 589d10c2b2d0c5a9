package main

import "testing"

// A printed ratio never reads as its target when it missed it.
func TestRatioTextShowsAMissAsOne(t *testing.T) {
	for _, c := range []struct {
		r, target float64
		want      string
	}{
		{0.846, 0.85, "0.846"}, // two decimals would print the target beside MISSED
		{0.8499, 0.85, "0.849"},
		{0.85, 0.85, "0.85"},
		{0.853, 0.85, "0.85"},
		{0.61, 0.80, "0.61"},
		{1.31, 0.70, "1.31"},
	} {
		if got := ratioText(c.r, c.target); got != c.want {
			t.Errorf("ratioText(%v, %v) = %q, want %q", c.r, c.target, got, c.want)
		}
	}
}
