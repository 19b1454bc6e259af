# qsr plot --kind ablation of results/paper-ablation.db (sweep paper-ablation). Run from this folder: gnuplot paper-ablation.gp
set terminal pngcairo size 1240,760 font 'Sans,10'
set output 'paper-ablation.png'
set termoption noenhanced
set datafile separator '\t'
set key top right
set grid lc rgb '#e0e0e0'
set linetype 1 lc rgb '#4e79a7'
set linetype 2 lc rgb '#f28e2b'
set linetype 3 lc rgb '#e15759'
set linetype 4 lc rgb '#76b7b2'
set linetype 5 lc rgb '#59a14f'
set linetype 6 lc rgb '#edc948'
set linetype 7 lc rgb '#b07aa1'
set linetype 8 lc rgb '#ff9da7'
set linetype 9 lc rgb '#9c755f'
set linetype 10 lc rgb '#bab0ac'
set linetype 11 lc rgb '#1f77b4'
set linetype 12 lc rgb '#8c564b'
set linetype 13 lc rgb '#17becf'
set linetype 14 lc rgb '#7f7f7f'
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
