# scale.gp - the curves of bench/scale.sh (issue 16) from its CSV.
# gnuplot -e "csv='OUT/scale.csv'; outdir='docs/img'; title_note='...'" bench/scale.gp
# Columns: 1 backend, 2 n, 3 status, 6 start_ms, 9 rss_kib, 10 vmlck_kib, 11 threads,
# 18 cycle_cpu_ms (see FIELDS in bench/scale.py). Rows whose status is not "ok" are left out.
if (!exists("csv")) csv = 'scale.csv'
if (!exists("outdir")) outdir = 'docs/img'
if (!exists("title_note")) title_note = ''
set datafile separator comma
set datafile missing '-'
ok(b) = (strcol(1) eq b && strcol(3) eq "ok")
F(b, col) = ok(b) && strlen(strcol(col)) > 0 ? column(col) : NaN
P(b, col, scale) = ok(b) && strlen(strcol(col)) > 0 ? column(col) * scale / column(2) : NaN

set terminal pngcairo size 1200,900 font ",10"
set grid
set key top left
set logscale x 10
set xlabel "secrets (N)"
set format x "10^{%L}"
st_f = 'lc rgb "#1f77b4" pt 7 lw 2'
st_v = 'lc rgb "#d62728" pt 5 lw 2'

set output outdir . '/scale-absolute.png'
set multiplot layout 2,2 title "runsecrets at scale: absolute " . title_note
set logscale y 10
set ylabel "ms"
set title "start to all N listed and read"
plot csv skip 1 using 2:(F("file",6)) with linespoints @st_f title "file", \
     '' skip 1 using 2:(F("vault",6)) with linespoints @st_v title "fake Vault (TLS, local)"
set ylabel "MiB"
set title "after reading all: RSS (solid), VmLck (dashed)"
plot csv skip 1 using 2:(F("file",9)/1024) with linespoints @st_f title "RSS file", \
     '' skip 1 using 2:(F("vault",9)/1024) with linespoints @st_v title "RSS Vault", \
     '' skip 1 using 2:(F("file",10)/1024) with linespoints @st_f dt 2 title "VmLck file", \
     '' skip 1 using 2:(F("vault",10)/1024) with linespoints @st_v dt 2 title "VmLck Vault"
unset logscale y
set ylabel "threads"
set yrange [0:*]
set title "threads after reading all"
plot csv skip 1 using 2:(F("file",11)) with linespoints @st_f title "file", \
     '' skip 1 using 2:(F("vault",11)) with linespoints @st_v title "fake Vault"
set autoscale y
set logscale y 10
set ylabel "ms CPU (utime+stime)"
set title "one refresh cycle of all N, minus idle"
plot csv skip 1 using 2:(F("file",18)) with linespoints @st_f title "file", \
     '' skip 1 using 2:(F("vault",18)) with linespoints @st_v title "fake Vault"
unset multiplot

set output outdir . '/scale-per-secret.png'
set multiplot layout 2,2 title "runsecrets at scale: per secret (flat = linear) " . title_note
unset logscale y
set yrange [0:*]
set ylabel "µs per secret"
set title "start to all served, per secret"
plot csv skip 1 using 2:(P("file",6,1000)) with linespoints @st_f title "file", \
     '' skip 1 using 2:(P("vault",6,1000)) with linespoints @st_v title "fake Vault"
set ylabel "KiB per secret"
set title "RSS per secret"
plot csv skip 1 using 2:(P("file",9,1)) with linespoints @st_f title "file", \
     '' skip 1 using 2:(P("vault",9,1)) with linespoints @st_v title "fake Vault"
set title "VmLck (locked, guarded memory) per secret"
plot csv skip 1 using 2:(P("file",10,1)) with linespoints @st_f title "file", \
     '' skip 1 using 2:(P("vault",10,1)) with linespoints @st_v title "fake Vault"
set ylabel "µs CPU per secret"
set title "one refresh cycle, per secret"
plot csv skip 1 using 2:(P("file",18,1000)) with linespoints @st_f title "file", \
     '' skip 1 using 2:(P("vault",18,1000)) with linespoints @st_v title "fake Vault"
unset multiplot
