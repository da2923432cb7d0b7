/* Placeholder until the data pipeline lands (removed then). */
#include "data/data.h"
