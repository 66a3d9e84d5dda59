/* main.c: the sqakd executable; the command line itself is sq_cli_main (cli_main.c, in the library). */
#include "cli.h"

int main(int argc, char **argv) { return sq_cli_main(argc, argv); }
