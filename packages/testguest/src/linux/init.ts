/**
 * The guest's userspace, as text: `/init` (busybox sh, PID 1), the `shutdown` that qemu-ga
 * calls, and acpid's power-button action. Kept in one module so the build's cache key covers
 * every byte of it.
 */

/** Printed on the serial console once the agent has been started. */
export const READY_MARKER = 'QMPKIT-LINUX-READY';
/** Each tick line is `QMPKIT-TICK <n>`, once a second. */
export const TICK_PREFIX = 'QMPKIT-TICK';
/** The virtio-serial port name qemu-ga listens on. */
export const AGENT_PORT = 'org.qemu.guest_agent.0';

/**
 * Kernel modules the guest loads (dependencies are added from each module's `depends=`):
 * crc32c_generic first — ext4 with metadata checksums needs a crc32c driver and the emulated
 * CPU lacks SSE4.2 for crc32c-intel; button + evdev give acpid the power button.
 */
export const GUEST_MODULES = [
  'crc32c_generic',
  'virtio_pci',
  'virtio_blk',
  'virtio_net',
  'virtio_console',
  'ext4',
  'button',
  'evdev',
] as const;

export const INIT_SCRIPT = `#!/bin/sh
# PID 1 of the qmpkit Linux test guest (busybox sh).
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /dev/pts /dev/virtio-ports /run/qemu-ga
mount -t devpts devpts /dev/pts
while read -r m; do insmod "/lib/modules/$m.ko" || echo "init: insmod $m failed"; done < /etc/modules.load

# No udev: link /dev/virtio-ports/<name> ourselves; a port's name shows up a little later.
tries=0
while [ "$tries" -lt 200 ]; do
  for port in /sys/class/virtio-ports/vport*; do
    [ -e "$port/name" ] || continue
    name=$(cat "$port/name")
    [ -n "$name" ] && ln -sf "/dev/\${port##*/}" "/dev/virtio-ports/$name"
  done
  [ -e /dev/virtio-ports/${AGENT_PORT} ] && break
  tries=$((tries + 1))
  sleep 0.05
done

if [ -b /dev/vda ]; then
  mount -t ext4 /dev/vda /data && echo "init: /dev/vda mounted on /data"
fi

if [ -e /dev/virtio-ports/${AGENT_PORT} ]; then
  # qemu-ga writes a pidfile only with -d; a loop restarts it if it dies (e.g. killed by a test).
  (
    while :; do
      qemu-ga -m virtio-serial -p /dev/virtio-ports/${AGENT_PORT} -t /run/qemu-ga -l /run/qemu-ga.log
      echo "init: qemu-ga exited ($?), restarting"
      sleep 1
    done
  ) &
else
  echo "init: no ${AGENT_PORT} port, qemu-ga not started"
fi

# acpid needs an input device (the ACPI power button through button + evdev).
[ -e /dev/input/event0 ] && acpid -l /run/acpid.log

leave() {
  echo "init: $1"
  fsfreeze --unfreeze /data 2>/dev/null
  sync
  umount /data 2>/dev/null || mount -o remount,ro /data 2>/dev/null
  "$1" -f
}
# busybox poweroff/halt/reboot only signal PID 1: USR2, USR1, TERM.
trap 'leave poweroff' USR2
trap 'leave halt' USR1
trap 'leave reboot' TERM

echo ${READY_MARKER}
n=0
while :; do
  n=$((n + 1))
  echo "${TICK_PREFIX} $n"
  # sleep in the background and wait: a trapped signal interrupts wait at once
  sleep 1 &
  wait $!
done
`;

/** qemu-ga runs `shutdown -h -P +0` (or -H, -r); busybox has no shutdown. */
export const SHUTDOWN_SCRIPT = `#!/bin/sh
case " $* " in
  *" -r "*) kill -TERM 1 ;;
  *" -H "*) kill -USR1 1 ;;
  *) kill -USR2 1 ;;
esac
`;

/** acpid runs /etc/acpi/PWRF/* on the power button (event 00000080). */
export const POWER_BUTTON_SCRIPT = `#!/bin/sh
exec poweroff
`;
