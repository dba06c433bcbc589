#include "lambda.h"
