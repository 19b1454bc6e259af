# qsr plot --kind pareto of results/quickstart.db (sweep quickstart). Run from this folder: gnuplot quickstart-pareto.gp
set terminal pngcairo size 1280,480 font 'Sans,10'
set output 'quickstart-pareto.png'
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
set logscale x
set xlabel 'decode latency, ms/token (tpot)'
set ylabel 'peak memory, MB'
set cblabel 'quality-loss proxy'
set palette defined (0 '#1a9850', 0.5 '#fee08b', 1 '#d73027')
set title 'llama-7b on a100-80g'
plot 'quickstart-pareto.dat' index 0 using 1:2 with points pt 7 ps 0.35 lc rgb '#d0d0d0' title 'meets constraints', \
     '' index 2 using 1:2 with steps lw 1.5 lc rgb '#404040' title 'front (latency-memory)', \
     '' index 1 using 1:2:3 with points pt 7 ps 1.0 lc palette title 'Pareto front', \
     '' index 1 using ($4 > 0 ? $1 : NaN):2 with points pt 6 ps 2.2 lw 2 lc rgb 'black' title 'knee'
set title 'llama-7b on orin-nx-16g'
plot 'quickstart-pareto.dat' index 3 using 1:2 with points pt 7 ps 0.35 lc rgb '#d0d0d0' title 'meets constraints', \
     '' index 5 using 1:2 with steps lw 1.5 lc rgb '#404040' title 'front (latency-memory)', \
     '' index 4 using 1:2:3 with points pt 7 ps 1.0 lc palette title 'Pareto front', \
     '' index 4 using ($4 > 0 ? $1 : NaN):2 with points pt 6 ps 2.2 lw 2 lc rgb 'black' title 'knee'
unset multiplot
