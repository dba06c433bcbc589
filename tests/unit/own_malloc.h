/* OWN_MALLOC: 1 when the test is built with AddressSanitizer, whose allocator replaces glibc's
 * malloc, so that glibc's settings (tunables, mallopt) do not apply and what the tests measure
 * of them (huge pages, RSS given back) cannot be seen. */
#ifndef S3IMGFS_TEST_OWN_MALLOC_H
#define S3IMGFS_TEST_OWN_MALLOC_H

#if defined(__SANITIZE_ADDRESS__)
#define OWN_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define OWN_MALLOC 1
#endif
#endif
#ifndef OWN_MALLOC
#define OWN_MALLOC 0
#endif

#endif
