//! User floating-point and SSE state: the kernel itself is built without
//! SSE, so the registers are the running process's until the scheduler
//! saves them (FXSAVE) and loads the next thread's (FXRSTOR).

/// The 512-byte FXSAVE area, as the CPU lays it out.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FpuState(pub [u8; 512]);

impl Default for FpuState {
    /// What a new process starts with, as after FNINIT: x87 control word
    /// 0x37f (all exceptions masked), MXCSR 0x1f80 (likewise).
    fn default() -> Self {
        let mut area = [0u8; 512];
        area[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        area[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        Self(area)
    }
}

impl FpuState {
    /// Saves the CPU's registers here.
    pub fn save(&mut self) {
        // SAFETY: FXSAVE64 writes 512 bytes at a 16-aligned address: the
        // array, aligned by `repr(align(16))`.
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack)) }
    }

    /// Loads the registers from here. MXCSR's reserved bits are cleared
    /// first: the bytes may come from a user signal frame, and a set
    /// reserved bit would make FXRSTOR fault in the kernel.
    pub fn restore(&mut self) {
        let mxcsr = u32::from_le_bytes([self.0[24], self.0[25], self.0[26], self.0[27]]) & 0xffff;
        self.0[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        // SAFETY: FXRSTOR64 reads 512 bytes at a 16-aligned address: the
        // array; MXCSR holds no reserved bit (cleared above).
        unsafe { core::arch::asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack, readonly)) }
    }
}
