package main

import (
	"errors"
	"testing"
	"time"
)

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

// alternateRates measures the two in the order A B B A A B B A, a quarter of the duration each,
// and each rate is the plain mean of its four turns.
func TestAlternateRates(t *testing.T) {
	d := *duration
	*duration = 8 * time.Second
	defer func() { *duration = d }()
	var order string
	var turns []time.Duration
	ceilRates := []float64{1, 2, 3, 4}
	figRates := []float64{10, 20, 30, 60}
	ceil, fig, err := alternateRates(func(d time.Duration) (float64, error) {
		order += "A"
		turns = append(turns, d)
		r := ceilRates[0]
		ceilRates = ceilRates[1:]
		return r, nil
	}, func(d time.Duration) (float64, error) {
		order += "B"
		turns = append(turns, d)
		r := figRates[0]
		figRates = figRates[1:]
		return r, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if order != "ABBAABBA" {
		t.Errorf("order %s, want ABBAABBA", order)
	}
	for _, d := range turns {
		if d != 2*time.Second {
			t.Errorf("a turn of %v, want 2s", d)
		}
	}
	if ceil != 2.5 || fig != 30 {
		t.Errorf("rates %v and %v, want 2.5 and 30", ceil, fig)
	}
	_, _, err = alternateRates(func(time.Duration) (float64, error) { return 1, nil },
		func(time.Duration) (float64, error) { return 0, errors.New("no signer") })
	if err == nil {
		t.Error("an error of a turn was not returned")
	}
}
