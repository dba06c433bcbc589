#include "lambda.h"

int main(void)
{
    return 1;
}
