package testnet

import (
	"math"

	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// Estimate is one figure over the runs of a scenario: its values (one per
// run that had data for it), their mean, sample standard deviation and
// the 95% confidence interval of the mean from Student's t distribution
// (mean ± t(0.975, n−1)·sd/√n). With fewer than two values the interval
// is absent.
type Estimate struct {
	N      int       `json:"n"`
	Mean   float64   `json:"mean"`
	SD     float64   `json:"sd"`
	Low    *float64  `json:"ci95_low,omitempty"`
	High   *float64  `json:"ci95_high,omitempty"`
	Half   *float64  `json:"ci95_half_width,omitempty"`
	Values []float64 `json:"values"`
}

// newEstimate summarises values (at least one).
func newEstimate(values []float64) Estimate {
	e := Estimate{N: len(values), Values: values}
	if e.N == 0 {
		return e
	}
	e.Mean = stat.Mean(values, nil)
	if e.N < 2 {
		return e
	}
	e.SD = stat.StdDev(values, nil)
	h := tQuantile(0.975, float64(e.N-1)) * e.SD / math.Sqrt(float64(e.N))
	lo, hi := e.Mean-h, e.Mean+h
	e.Low, e.High, e.Half = &lo, &hi, &h
	return e
}

// HasCI reports whether the estimate has a confidence interval.
func (e Estimate) HasCI() bool { return e.Half != nil }

// tQuantile is the p-quantile of Student's t distribution with df degrees
// of freedom.
func tQuantile(p, df float64) float64 {
	return distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(p)
}

// Welch is Welch's unequal-variances t-test of the difference of two
// means (B − A).
type Welch struct {
	Diff float64 // mean B − mean A
	// Low and High bound the difference's 95% confidence interval.
	Low, High float64
	T, DF     float64
	// P is the two-sided p-value.
	P float64
	// OK is false when the test cannot be made: fewer than two values
	// on a side, or no variance on either.
	OK bool
}

// welch tests the difference of b's mean from a's.
func welch(a, b Estimate) Welch {
	w := Welch{Diff: b.Mean - a.Mean}
	if a.N < 2 || b.N < 2 {
		return w
	}
	va, vb := a.SD*a.SD/float64(a.N), b.SD*b.SD/float64(b.N)
	se := math.Sqrt(va + vb)
	if se == 0 {
		return w
	}
	w.T = w.Diff / se
	w.DF = (va + vb) * (va + vb) / (va*va/float64(a.N-1) + vb*vb/float64(b.N-1))
	td := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: w.DF}
	w.P = 2 * td.Survival(math.Abs(w.T))
	h := td.Quantile(0.975) * se
	w.Low, w.High = w.Diff-h, w.Diff+h
	w.OK = true
	return w
}
