/*
 * unifaas "do-nothing" init: the cheapest possible PID 1, used to measure the
 * boot floor of a kernel/machine combination and to probe whether an
 * accelerator (KVM) boots at all.
 *
 * It mounts devtmpfs on /dev, opens the agent's virtio-serial port, writes
 * "UFFLOOR\n" and reboots; with QEMU's -no-reboot that makes QEMU exit.
 *
 * Built with `gcc -static -nostdlib`: no libc, raw x86-64 syscalls only, so the
 * measurement contains no dynamic loader or libc start-up cost.
 */

typedef long i64;
typedef unsigned long u64;

#define SYS_write 1
#define SYS_open 2
#define SYS_nanosleep 35
#define SYS_exit 60
#define SYS_mount 165
#define SYS_reboot 169

#define O_RDWR 02
#define O_NOCTTY 0400
#define ENOENT 2
#define ENXIO 6
#define ENODEV 19

#define LINUX_REBOOT_MAGIC1 0xfee1deadUL
#define LINUX_REBOOT_MAGIC2 672274793UL
#define LINUX_REBOOT_CMD_RESTART 0x01234567UL

/* Retry for about 5 s: the port's node appears before the host side is
   attached, and open() fails with ENXIO until then. */
#define OPEN_RETRY_NS 10000000L
#define OPEN_RETRIES 500

static i64 sys3(i64 n, i64 a, i64 b, i64 c)
{
	i64 ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return ret;
}

static i64 sys5(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e)
{
	i64 ret;
	register i64 r10 __asm__("r10") = d;
	register i64 r8 __asm__("r8") = e;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}

struct timespec {
	i64 tv_sec;
	i64 tv_nsec;
};

static u64 slen(const char *s)
{
	u64 n = 0;
	while (s[n])
		n++;
	return n;
}

/* Diagnostics go to the kernel console (fd 2 is /dev/console for PID 1). */
static void say(const char *msg, i64 err)
{
	char num[24];
	int i = sizeof(num);
	u64 v = (u64)(err < 0 ? -err : err);

	sys3(SYS_write, 2, (i64)msg, (i64)slen(msg));
	if (err) {
		num[--i] = '\n';
		do {
			num[--i] = (char)('0' + v % 10);
			v /= 10;
		} while (v && i > 0);
		sys3(SYS_write, 2, (i64)(num + i), (i64)(sizeof(num) - i));
	}
}

static void __attribute__((noreturn)) finish(void)
{
	sys5(SYS_reboot, (i64)LINUX_REBOOT_MAGIC1, (i64)LINUX_REBOOT_MAGIC2,
	     (i64)LINUX_REBOOT_CMD_RESTART, 0, 0);
	/* Not reached; if it were, PID 1 exiting panics, and panic=-1 reboots too. */
	for (;;)
		sys3(SYS_exit, 1, 0, 0);
}

void __attribute__((noreturn, used)) floor_main(void)
{
	static const char magic[8] = { 'U', 'F', 'F', 'L', 'O', 'O', 'R', '\n' };
	struct timespec pause = { 0, OPEN_RETRY_NS };
	i64 fd = -ENOENT;
	i64 r;
	int tries;

	r = sys5(SYS_mount, (i64) "devtmpfs", (i64) "/dev", (i64) "devtmpfs", 0, 0);
	if (r < 0)
		say("floor: mount devtmpfs failed, errno ", r);

	for (tries = 0; tries < OPEN_RETRIES; tries++) {
		fd = sys3(SYS_open, (i64) "/dev/vport0p1", O_RDWR | O_NOCTTY, 0);
		if (fd >= 0 || (fd != -ENXIO && fd != -ENOENT && fd != -ENODEV))
			break;
		sys3(SYS_nanosleep, (i64)&pause, 0, 0);
	}
	if (fd < 0) {
		say("floor: open /dev/vport0p1 failed, errno ", fd);
		finish();
	}

	r = sys3(SYS_write, fd, (i64)magic, sizeof(magic));
	if (r != (i64)sizeof(magic))
		say("floor: write to /dev/vport0p1 failed, result ", r);
	finish();
}

/* The kernel enters with a 16-byte aligned stack and no return address; the
   call below gives floor_main the alignment the ABI promises a function. */
__asm__(".text\n"
	".globl _start\n"
	"_start:\n"
	"	xor %ebp, %ebp\n"
	"	and $-16, %rsp\n"
	"	call floor_main\n"
	"	ud2\n");
