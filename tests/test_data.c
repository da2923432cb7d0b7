/* Placeholder: this test file lands with its feature. */
#include "tests/test_util.h"

int main(int argc, char **argv) {
    return test_main(argc, argv, NULL, 0);
}
