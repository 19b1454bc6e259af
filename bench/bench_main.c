/* bench_main.c -- `make bench`: every benchmark, figures printed, nothing asserted. */
void bench_predict(void);
void bench_sweep(void);
void bench_kernels(void);
void bench_serve(void);

int main(void) {
  bench_predict();
  bench_sweep();
  bench_serve();
  bench_kernels();
  return 0;
}
