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

// Both tables judge a ratio the same way: met at the target, MISSED below it.
func TestJudge(t *testing.T) {
	for _, c := range []struct {
		r, target            float64
		ratio, goal, verdict string
	}{
		{0.846, 0.85, "0.846", "≥ 0.85", "MISSED"},
		{0.85, 0.85, "0.85", "≥ 0.85", "met"},
		{1.07, 0.80, "1.07", "≥ 0.80", "met"},
	} {
		ratio, goal, verdict := judge(c.r, c.target)
		if ratio != c.ratio || goal != c.goal || verdict != c.verdict {
			t.Errorf("judge(%v, %v) = %q %q %q, want %q %q %q", c.r, c.target, ratio, goal, verdict, c.ratio, c.goal, c.verdict)
		}
	}
}
