// Package benchfilters benchmarks the rule matcher of package filters on
// realistic ~1 KB CloudEvents: events per second per core, including JSON
// parsing, for 10, 1,000 and 10,000 rules of mixed operators, the cost of
// expr filters, and the inherent worst case of many overlapping wildcards.
// Results are recorded in bench/RESULTS.md.
package benchfilters
