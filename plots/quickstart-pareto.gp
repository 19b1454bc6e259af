# qsr plot --kind pareto of results/quickstart.db (sweep quickstart). Run from this folder: gnuplot quickstart-pareto.gp
set terminal pngcairo size 1280,480 font 'Sans,10'
set output 'quickstart-pareto.png'
set datafile separator '\t'
set key top right
set grid lc rgb '#e0e0e0'
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
