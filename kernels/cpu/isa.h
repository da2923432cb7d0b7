/* The CPU kernels are compiled once per ISA path (generic x86-64, AVX2+FMA, AVX-512) from the same
 * sources; KFN gives each build's functions distinct names, and table.c picks one build at run time.
 * HFT_ISA_SUFFIX is set by the build (generic, avx2, avx512). */
#ifndef HFT_CPU_ISA_H
#define HFT_CPU_ISA_H

#define HFT_CAT2_(a, b) a##_##b
#define HFT_CAT2(a, b)  HFT_CAT2_(a, b)
#define KFN(name)       HFT_CAT2(name, HFT_ISA_SUFFIX)
#define HFT_STR_(x)     #x
#define HFT_STR(x)      HFT_STR_(x)

#ifndef HFT_ISA_SUFFIX
#error "HFT_ISA_SUFFIX must be defined by the build"
#endif

#endif
