/* The sample container's program: prints a line and what it sees of its root (each
   path's presence, and for one present its mode in octal and owner). */
#include <stdio.h>
#include <sys/stat.h>

int main(int argc, char** argv) {
  printf("hello from a clip snapshot\n");
  for (int i = 1; i < argc; ++i) {
    struct stat st;
    if (lstat(argv[i], &st) == 0) {
      printf("%s: present mode=%o uid=%u\n", argv[i], (unsigned)(st.st_mode & 07777),
             (unsigned)st.st_uid);
    } else {
      printf("%s: absent\n", argv[i]);
    }
  }
  return 0;
}
