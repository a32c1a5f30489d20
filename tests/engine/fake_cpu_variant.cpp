// A stand-in for a CPU backend variant whose instructions this CPU advertises but
// cannot run (a VM that lists AMX and raises SIGILL on the first tile instruction): it
// rates itself above every real variant and dies on an illegal instruction as soon as
// it is started. A real variant cannot be made to fail like that on a machine whose
// CPU works, hence this fake (used by cpu_test only).
extern "C" {

__attribute__((visibility("default"))) int ggml_backend_score() {
  return 1 << 20;
}

__attribute__((visibility("default"))) void* ggml_backend_init() {
  __builtin_trap();  // ud2: SIGILL
}
}
