# count.awk - the awk workload of the preload tests: distinct words and a sum.
{ count[$2]++; total += $1 }
END { for (k in count) n++; print n, total }
