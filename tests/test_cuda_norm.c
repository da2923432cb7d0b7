/* (placeholder: the CUDA norm tests) */
#include "tests/cuda_test_util.h"

int main(int argc, char **argv) {
    return cuda_test_main(argc, argv, NULL, 0);
}
