"""Task media: fetching (host policy, redirects, credentials), decoding and prefetching images and videos."""
