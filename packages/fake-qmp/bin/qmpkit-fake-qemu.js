#!/usr/bin/env node
import '../dist/qemu-bin.js';
