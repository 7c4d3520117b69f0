/*
 * readloop -- bare libpcap read-loop baseline for proxyscope benchmarks.
 *
 * It reads every record of a pcap file and counts packets and captured
 * bytes, nothing else.  That is the floor a pcap-reading tool cannot go
 * below with libpcap: proxyscope's wall time is quoted as a ratio to it.
 *
 *   readloop [--plain] [--syns] FILE
 *
 *   default   fopen() + setvbuf() with a 1 MiB page-aligned buffer
 *             (posix_memalign), FILE* handed to pcap_fopen_offline().
 *   --plain   pcap_open_offline(FILE): libpcap's own fopen with the
 *             default stdio buffer (BUFSIZ / st_blksize, 4 KiB typically).
 *   --syns    also count TCP segments with SYN set and ACK clear
 *             (= connection attempts).  Minimal header walk (Ethernet,
 *             802.1Q, Linux SLL/SLL2, raw IP, BSD null/loop; IPv4 + IPv6
 *             without extension headers).  Not for timing runs.
 *
 * Output (one line, stdout):
 *   packets=N bytes=CAPLEN_SUM wire_bytes=LEN_SUM [syns=S]
 *
 * Build: gcc -O2 -o bench/out/readloop bench/readloop.c -lpcap
 */
#define _DEFAULT_SOURCE 1 /* u_char & co. for pcap.h, posix_memalign */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_SIZE (1u << 20) /* 1 MiB */

struct counts {
    uint64_t packets;
    uint64_t bytes;      /* sum of caplen */
    uint64_t wire_bytes; /* sum of len */
    uint64_t syns;
    int linktype;
};

static void cb(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
    struct counts *c = (struct counts *)user;
    (void)data;
    c->packets++;
    c->bytes += h->caplen;
    c->wire_bytes += h->len;
}

/* Returns offset of the IP header, or -1. *ethertype gets 0x0800/0x86dd. */
static long l3_offset(int linktype, const u_char *d, uint32_t n, unsigned *ethertype)
{
    long off;
    unsigned et;
    switch (linktype) {
    case DLT_EN10MB:
        if (n < 14) return -1;
        et = (unsigned)d[12] << 8 | d[13];
        off = 14;
        while ((et == 0x8100 || et == 0x88a8) && n >= (uint32_t)off + 4) {
            et = (unsigned)d[off + 2] << 8 | d[off + 3];
            off += 4;
        }
        break;
    case DLT_LINUX_SLL:
        if (n < 16) return -1;
        et = (unsigned)d[14] << 8 | d[15];
        off = 16;
        break;
#ifdef DLT_LINUX_SLL2
    case DLT_LINUX_SLL2:
        if (n < 20) return -1;
        et = (unsigned)d[0] << 8 | d[1];
        off = 20;
        break;
#endif
    case DLT_NULL:
    case DLT_LOOP: {
        if (n < 4) return -1;
        uint32_t af_le = (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 | (uint32_t)d[3] << 24;
        uint32_t af_be = (uint32_t)d[3] | (uint32_t)d[2] << 8 | (uint32_t)d[1] << 16 | (uint32_t)d[0] << 24;
        uint32_t af = linktype == DLT_LOOP ? af_be : (af_le < 256 ? af_le : af_be);
        et = af == 2 ? 0x0800 : 0x86dd; /* AF_INET, else assume an AF_INET6 */
        off = 4;
        break;
    }
    case DLT_RAW:
#ifdef DLT_IPV4
    case DLT_IPV4:
    case DLT_IPV6:
#endif
    case 101: /* LINKTYPE_RAW */
        if (n < 1) return -1;
        et = (d[0] >> 4) == 6 ? 0x86dd : 0x0800;
        off = 0;
        break;
    default:
        return -1;
    }
    *ethertype = et;
    return off;
}

static void cb_syns(u_char *user, const struct pcap_pkthdr *h, const u_char *d)
{
    struct counts *c = (struct counts *)user;
    unsigned et = 0;
    long off;
    uint32_t n = h->caplen;
    c->packets++;
    c->bytes += h->caplen;
    c->wire_bytes += h->len;

    off = l3_offset(c->linktype, d, n, &et);
    if (off < 0) return;
    if (et == 0x0800) {
        if (n < (uint32_t)off + 20) return;
        unsigned ihl = (d[off] & 0x0f) * 4u;
        unsigned frag = ((unsigned)d[off + 6] << 8 | d[off + 7]) & 0x1fff;
        if (d[off + 9] != 6 || frag != 0 || ihl < 20) return;
        off += ihl;
    } else if (et == 0x86dd) {
        if (n < (uint32_t)off + 40) return;
        if (d[off + 6] != 6) return; /* no extension-header walk */
        off += 40;
    } else {
        return;
    }
    if (n < (uint32_t)off + 14) return;
    unsigned flags = d[off + 13];
    if ((flags & 0x02) && !(flags & 0x10)) c->syns++;
}

static void usage(void)
{
    fprintf(stderr, "usage: readloop [--plain] [--syns] FILE\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int plain = 0, syns = 0;
    const char *path = NULL;
    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *p;
    struct counts c;
    int i, r;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--plain") == 0) plain = 1;
        else if (strcmp(argv[i], "--syns") == 0) syns = 1;
        else if (argv[i][0] == '-' && argv[i][1] != '\0') usage();
        else if (!path) path = argv[i];
        else usage();
    }
    if (!path) usage();

    if (plain) {
        p = pcap_open_offline(path, errbuf);
        if (!p) { fprintf(stderr, "readloop: %s\n", errbuf); return 1; }
    } else {
        FILE *f = fopen(path, "rb");
        void *buf = NULL;
        if (!f) { perror(path); return 1; }
        if (posix_memalign(&buf, 4096, BUF_SIZE) != 0) { fprintf(stderr, "readloop: posix_memalign failed\n"); return 1; }
        if (setvbuf(f, buf, _IOFBF, BUF_SIZE) != 0) { fprintf(stderr, "readloop: setvbuf failed\n"); return 1; }
        p = pcap_fopen_offline(f, errbuf); /* pcap_close() fcloses f; buf is leaked on purpose */
        if (!p) { fprintf(stderr, "readloop: %s\n", errbuf); return 1; }
    }

    memset(&c, 0, sizeof c);
    c.linktype = pcap_datalink(p);
    for (;;) {
        r = pcap_dispatch(p, -1, syns ? cb_syns : cb, (u_char *)&c);
        if (r == 0) break;                 /* EOF */
        if (r == PCAP_ERROR) {
            fprintf(stderr, "readloop: %s\n", pcap_geterr(p));
            pcap_close(p);
            return 1;
        }
        if (r == PCAP_ERROR_BREAK) break;
    }
    pcap_close(p);

    if (syns)
        printf("packets=%llu bytes=%llu wire_bytes=%llu syns=%llu\n",
               (unsigned long long)c.packets, (unsigned long long)c.bytes,
               (unsigned long long)c.wire_bytes, (unsigned long long)c.syns);
    else
        printf("packets=%llu bytes=%llu wire_bytes=%llu\n",
               (unsigned long long)c.packets, (unsigned long long)c.bytes,
               (unsigned long long)c.wire_bytes);
    return 0;
}
