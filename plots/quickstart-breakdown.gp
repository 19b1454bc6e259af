# qsr plot --kind breakdown of results/quickstart.db (sweep quickstart). Run from this folder: gnuplot quickstart-breakdown.gp
set terminal pngcairo size 1360,440 font 'Sans,10'
set output 'quickstart-breakdown.png'
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
set multiplot layout 1,2
set style data histograms
set style histogram rowstacked
set style fill solid 0.9 border -1
set boxwidth 0.75
set xtics rotate by -35 nomirror font ',8'
set key outside right font ',8'
set ylabel 'decode ms/token'
set title 'llama-7b on a100-80g (Pareto points, fastest first)'
plot for [c=2:10] 'quickstart-breakdown.dat' index 0 using c:xtic(1) title columnheader(c)
set title 'llama-7b on orin-nx-16g (Pareto points, fastest first)'
plot for [c=2:10] 'quickstart-breakdown.dat' index 1 using c:xtic(1) title columnheader(c)
unset multiplot
