# qsr plot --kind ablation of results/paper-ablation.db (sweep paper-ablation). Run from this folder: gnuplot paper-ablation.gp
set terminal pngcairo size 1240,760 font 'Sans,10'
set output 'paper-ablation.png'
set datafile separator '\t'
set key top right
set grid lc rgb '#e0e0e0'
set multiplot layout 2,2
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics rotate by -30 nomirror
set key top right
set logscale y
set title 'a100-80g: decode latency'
set ylabel 'ms/token (log)'
plot for [c=2:3] 'paper-ablation.dat' index 0 using c:xtic(1) title columnheader(c)
set title 'a100-80g: peak memory'
set ylabel 'MB (log)'
plot for [c=2:3] 'paper-ablation.dat' index 1 using c:xtic(1) title columnheader(c)
set title 'orin-nx-16g: decode latency'
set ylabel 'ms/token (log)'
plot for [c=2:3] 'paper-ablation.dat' index 2 using c:xtic(1) title columnheader(c)
set title 'orin-nx-16g: peak memory'
set ylabel 'MB (log)'
plot for [c=2:3] 'paper-ablation.dat' index 3 using c:xtic(1) title columnheader(c)
unset multiplot
