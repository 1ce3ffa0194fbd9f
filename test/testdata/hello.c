/* The sample container's program: prints a line and what it sees of its root. */
#include <stdio.h>
#include <unistd.h>

int main(int argc, char** argv) {
  printf("hello from a clip snapshot\n");
  for (int i = 1; i < argc; ++i) {
    printf("%s: %s\n", argv[i], access(argv[i], F_OK) == 0 ? "present" : "absent");
  }
  return 0;
}
