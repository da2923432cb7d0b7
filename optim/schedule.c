/* Placeholder: lands with issue 4. */
#include "optim/optim.h"
