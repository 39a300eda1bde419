package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

type better int

const (
	higher better = iota
	lower
	absLower // an absolute figure with an upper bound (no direct run)
)

type row struct {
	metric string
	note   string
	better better
	target float64 // ratio to direct (higher/lower) or absolute bound (absLower); 0 = none
	vals   map[string]float64
	skips  map[string]string
}

// table collects medians per metric and target and prints them.
type table struct {
	reps int
	rows []*row
}

func (t *table) row(metric string) *row {
	for _, r := range t.rows {
		if r.metric == metric {
			return r
		}
	}
	r := &row{metric: metric, vals: map[string]float64{}, skips: map[string]string{}}
	t.rows = append(t.rows, r)
	return r
}

func (t *table) add(metric, target string, v []float64, b better, goal float64, note string) {
	r := t.row(metric)
	r.better, r.target = b, goal
	if note != "" {
		r.note = note
	}
	r.vals[target] = median(v)
}

func (t *table) addAbs(metric, target string, v []float64, bound float64, note string) {
	r := t.row(metric)
	r.better = absLower
	if bound > 0 {
		r.target = bound
	}
	if note != "" {
		if r.note != "" {
			r.note += "; "
		}
		r.note += target + ": " + note
	}
	r.vals[target] = median(v)
}

func (t *table) skip(metric, target, why string) {
	t.row(metric).skips[target] = why
}

func fmtVal(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func (r *row) cell(target string) string {
	if why, ok := r.skips[target]; ok {
		return "n/a (" + why + ")"
	}
	v, ok := r.vals[target]
	if !ok {
		return "—"
	}
	s := fmtVal(v)
	d, ok := r.vals["direct"]
	if r.better != absLower && ok && d > 0 && target != "direct" {
		s += fmt.Sprintf(" (%.2f×)", v/d)
	}
	return s
}

// verdict says whether imapfront meets its target and beats Cyrus's front end.
func (r *row) verdict() string {
	f, ok := r.vals["imapfront"]
	if !ok {
		return ""
	}
	var parts []string
	d, hasD := r.vals["direct"]
	switch {
	case r.better == absLower && r.target > 0:
		parts = append(parts, fmt.Sprintf("≤ %s: %s", fmtVal(r.target), yes(f <= r.target)))
	case r.better == higher && r.target > 0 && hasD:
		parts = append(parts, fmt.Sprintf("≥ %.2f×: %s", r.target, yes(f/d >= r.target)))
	case r.better == lower && r.target > 0 && hasD:
		parts = append(parts, fmt.Sprintf("≤ %.2f×: %s", r.target, yes(f/d <= r.target)))
	}
	if c, ok := r.vals["cyrus-fe"]; ok {
		ahead := f >= c
		if r.better != higher {
			ahead = f <= c
		}
		parts = append(parts, "ahead of cyrus-fe: "+yes(ahead))
	}
	return strings.Join(parts, "; ")
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

func (t *table) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nMachine: %s. %s, median of %d repetitions, %s.\n\n", machine(), runtime.Version(), t.reps, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	b.WriteString("| workload | direct (be1/be2) | imapfront (ratio) | Cyrus front end (ratio) | imapfront target | notes |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, r := range t.rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r.metric, r.cell("direct"), r.cell("imapfront"), r.cell("cyrus-fe"), r.verdict(), r.note)
	}
	return b.String()
}

// machine describes the CPU count, model and memory from /proc.
func machine() string {
	model, mem := "", ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "model name"); ok && model == "" {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(v), "%d", &kb)
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
		f.Close()
	}
	return fmt.Sprintf("%d cores (%s), %s RAM", runtime.NumCPU(), model, mem)
}
