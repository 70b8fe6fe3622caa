/**
 * Renames QEMU made without changing what goes on the wire, so a comparison must not flag
 * them. These are facts about QEMU's history (the same facts QEMU's own
 * `scripts/vmstate-static-checker.py` knows), kept here as pairs: each pair names one thing
 * twice, old name first. Keyed by the description the field lives in (for field names) or by
 * the section (for description and section names).
 */

/** Field renames per description name: `[old, new]`. */
export const FIELD_RENAMES: Readonly<Record<string, readonly (readonly [string, string])[]>> = {
  apic: [['timer', 'timer_expiry']],
  e1000: [['dev', 'parent_obj']],
  ehci: [['dev', 'pcidev']],
  I440FX: [['dev', 'parent_obj']],
  ich9_ahci: [['card', 'parent_obj']],
  'ich9-ahci': [['ahci', 'ich9_ahci']],
  ioh3420: [['PCIDevice', 'PCIEDevice']],
  'ioh-3240-express-root-port': [
    ['port.br.dev', 'parent_obj.parent_obj.parent_obj'],
    ['port.br.dev.exp.aer_log', 'parent_obj.parent_obj.parent_obj.exp.aer_log'],
  ],
  cirrus_vga: [
    ['hw_cursor_x', 'vga.hw_cursor_x'],
    ['hw_cursor_y', 'vga.hw_cursor_y'],
  ],
  lsiscsi: [['dev', 'parent_obj']],
  mch: [['d', 'parent_obj']],
  pci_bridge: [
    ['bridge.dev', 'parent_obj'],
    ['bridge.dev.shpc', 'shpc'],
  ],
  pcnet: [['pci_dev', 'parent_obj']],
  PIIX3: [['pci_irq_levels', 'pci_irq_levels_vmstate']],
  piix4_pm: [
    ['dev', 'parent_obj'],
    ['pci0_status', 'acpi_pci_hotplug.acpi_pcihp_pci_status[0x0]'],
    ['pm1a.sts', 'ar.pm1.evt.sts'],
    ['pm1a.en', 'ar.pm1.evt.en'],
    ['pm1_cnt.cnt', 'ar.pm1.cnt.cnt'],
    ['tmr.timer', 'ar.tmr.timer'],
    ['tmr.overflow_time', 'ar.tmr.overflow_time'],
    ['gpe', 'ar.gpe'],
  ],
  rtl8139: [['dev', 'parent_obj']],
  qxl: [['num_surfaces', 'ssd.num_surfaces']],
  'usb-ccid': [['abProtocolDataStructure', 'abProtocolDataStructure.data']],
  'usb-host': [['dev', 'parent_obj']],
  'usb-mouse': [['usb-ptr-queue', 'HIDPointerEventQueue']],
  'usb-tablet': [['usb-ptr-queue', 'HIDPointerEventQueue']],
  vmware_vga: [['card', 'parent_obj']],
  vmware_vga_internal: [['depth', 'new_depth']],
  xhci: [['pci_dev', 'parent_obj']],
  'x3130-upstream': [['PCIDevice', 'PCIEDevice']],
  'xio3130-express-downstream-port': [
    ['port.br.dev', 'parent_obj.parent_obj.parent_obj'],
    ['port.br.dev.exp.aer_log', 'parent_obj.parent_obj.parent_obj.exp.aer_log'],
  ],
  'xio3130-downstream': [['PCIDevice', 'PCIEDevice']],
  'xio3130-express-upstream-port': [
    ['br.dev', 'parent_obj.parent_obj'],
    ['br.dev.exp.aer_log', 'parent_obj.parent_obj.exp.aer_log'],
  ],
};

/** Section renames: `[old, new]` (a section found under either name is the same section). */
export const SECTION_RENAMES: readonly (readonly [string, string])[] = [
  ['ICH9 LPC', 'ICH9-LPC'],
  ['e1000-82540em', 'e1000'],
];

/** Whether `a` and `b` name the same thing inside `scope` (equal, or a known rename either way). */
export function sameName(
  renames: Readonly<Record<string, readonly (readonly [string, string])[]>>,
  scope: string,
  a: string,
  b: string,
): boolean {
  if (a === b) return true;
  const pairs = renames[scope];
  if (pairs === undefined) return false;
  return pairs.some(([x, y]) => (x === a && y === b) || (x === b && y === a));
}

/** The other name of a renamed section, or `undefined`. */
export function renamedSection(name: string): string | undefined {
  for (const [a, b] of SECTION_RENAMES) {
    if (a === name) return b;
    if (b === name) return a;
  }
  return undefined;
}
