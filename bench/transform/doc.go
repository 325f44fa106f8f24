// Package benchtransform holds the benchmarks of target transforms
// (filters/transform): the cost per event of each form on a ~1 KB order
// event. It owns no code that busbar runs; results are recorded in
// bench/RESULTS.md, section "Transforms (issue 4)".
package benchtransform
